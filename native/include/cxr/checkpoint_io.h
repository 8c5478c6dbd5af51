// Reading PyTorch checkpoint files as data: `torch.save` zip archives (state dicts, possibly nested in
// dicts such as {"state_dict": ...}) and TorchScript archives (OpenAI's released ViT-B-32.pt etc.).
// No Python and no code execution: the zip is read by libtorch's PyTorchStreamReader, `data.pkl` by a
// strict data-only unpickler that accepts dicts, lists, tuples, strings, numbers and tensors and rejects
// every other object; TorchScript archives are loaded with torch::jit::load and only their parameters
// and buffers are taken.
#pragma once
#include <string>
#include <vector>

#include "cxr/engine.h"  // NamedTensor
#include "cxr/errors.h"

namespace cxr {

enum class TorchFileKind { TorchSave, TorchScript };

struct TorchFile {
  TorchFileKind kind = TorchFileKind::TorchSave;
  // Tensors in file order, original dtype, CPU. Nested containers are flattened with dotted names
  // ("state_dict.visual.conv1.weight", "layers.0"); non-tensor leaves (epochs, strings) are skipped.
  std::vector<NamedTensor> tensors;
};

// Reads a checkpoint file. Throws cxr::Error: Io (missing/unreadable file), Checkpoint (not a zip archive,
// truncated or corrupt archive, the legacy non-zip format, an object other than plain data), each message
// naming the path.
TorchFile read_torch_file(const std::string& path);

}  // namespace cxr
