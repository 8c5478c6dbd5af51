// Tiny model configs shared by the C++ core tests (fast on one CPU thread).
#pragma once
#include "cxr/config.h"

namespace cxr_test {
inline cxr::ModelConfig tiny_vit() {
  cxr::ModelConfig c;
  c.embed_dim = 32;
  c.vision.type = "vit";
  c.vision.image_size = 32;
  c.vision.patch_size = 8;
  c.vision.width = 64;
  c.vision.layers = 2;
  c.vision.heads = 2;
  c.text.vocab_size = 100;
  c.text.context_length = 16;
  c.text.width = 32;
  c.text.layers = 2;
  c.text.heads = 2;
  return c;
}
}  // namespace cxr_test
