// Tests of cxr::read_torch_file on the committed fixtures (test/fixtures/checkpoints, written by
// make_fixtures.py with PyTorch) and on damaged archives: every failure must be a cxr::Error, never a crash.
// Reading is host work (tensors land on the CPU whatever device the file was saved from); moving weights
// onto a device and back is the engine's, checked on every device in model_test.cc.
#include <caffe2/serialize/inline_container.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <unistd.h>

#include "cxr/checkpoint_io.h"
#include "test_util.h"

namespace {
std::string fixture(const std::string& name) {
  std::string here = __FILE__;
  return here.substr(0, here.rfind('/')) + "/../../test/fixtures/checkpoints/" + name;
}
std::string tmp_path(const std::string& name) {
  const char* t = std::getenv("TMPDIR");
  return std::string(t ? t : "/tmp") + "/cxr_ckpt_test_" + std::to_string(::getpid()) + "_" + name;
}
std::string read_all(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
void write_all(const std::string& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary);
  out.write(s.data(), static_cast<std::streamsize>(s.size()));
}
std::map<std::string, torch::Tensor> by_name(const cxr::TorchFile& f, const std::string& strip = "") {
  std::map<std::string, torch::Tensor> m;
  for (auto& t : f.tensors)
    if (t.name.rfind(strip, 0) == 0) m[t.name.substr(strip.size())] = t.tensor;
  return m;
}
}  // namespace

CXR_TEST(reads_state_dict_ordered_dict_float16) {
  auto f = cxr::read_torch_file(fixture("openai-state-dict.pt"));
  EXPECT_TRUE(f.kind == cxr::TorchFileKind::TorchSave);
  auto m = by_name(f);
  EXPECT_TRUE(m.count("visual.conv1.weight") == 1);
  EXPECT_TRUE(m.count("transformer.resblocks.0.attn.in_proj_weight") == 1);
  EXPECT_TRUE(m["visual.conv1.weight"].scalar_type() == torch::kHalf);
  EXPECT_TRUE(m["visual.conv1.weight"].sizes().vec() == std::vector<int64_t>({64, 3, 4, 4}));
  EXPECT_TRUE(m["logit_scale"].dim() == 0);
  // The fixture stores ln(1/0.07) in float16.
  EXPECT_NEAR(m["logit_scale"].item<float>(), std::log(1 / 0.07), 2e-3);
}

CXR_TEST(wrapped_and_torchscript_hold_the_same_weights) {
  auto plain = by_name(cxr::read_torch_file(fixture("openai-state-dict.pt")));
  auto wf = cxr::read_torch_file(fixture("openai-wrapped.pt"));
  auto wrapped = by_name(wf, "state_dict.module.");
  auto jf = cxr::read_torch_file(fixture("openai-jit.pt"));
  EXPECT_TRUE(jf.kind == cxr::TorchFileKind::TorchScript);
  auto jit = by_name(jf);
  EXPECT_TRUE(jit.count("input_resolution") == 1);  // OpenAI's scalars come along as buffers
  EXPECT_TRUE(by_name(wf).count("optimizer.state.0.exp_avg") == 1);  // nested dicts with int keys
  EXPECT_TRUE(plain.size() > 30);
  for (auto& kv : plain) {
    EXPECT_TRUE(wrapped.count(kv.first) == 1);
    EXPECT_TRUE(jit.count(kv.first) == 1);
    auto a = kv.second.to(torch::kFloat32);
    EXPECT_TRUE(wrapped[kv.first].scalar_type() == torch::kFloat32);
    EXPECT_TRUE(torch::equal(a, wrapped[kv.first]));
    EXPECT_TRUE(torch::equal(a, jit[kv.first].to(torch::kFloat32)));
  }
}

CXR_TEST(rejects_legacy_python_objects_and_missing_files) {
  EXPECT_THROWS_CODE(cxr::read_torch_file(fixture("legacy.pt")), Checkpoint);
  EXPECT_THROWS_CODE(cxr::read_torch_file(fixture("python-object.pt")), Checkpoint);
  EXPECT_THROWS_CODE(cxr::read_torch_file(fixture("does-not-exist.pt")), Io);
  try {
    cxr::read_torch_file(fixture("python-object.pt"));
  } catch (const cxr::Error& e) {
    EXPECT_TRUE(std::string(e.what()).find("NotData") != std::string::npos);
  }
}

CXR_TEST(truncated_and_garbage_files_are_checkpoint_errors) {
  auto bytes = read_all(fixture("openai-state-dict.pt"));
  std::mt19937 rng(7);
  for (size_t cut : {size_t{3}, size_t{30}, bytes.size() / 3, bytes.size() / 2, bytes.size() - 10}) {
    auto p = tmp_path("trunc.pt");
    write_all(p, bytes.substr(0, cut));
    EXPECT_THROWS_CODE(cxr::read_torch_file(p), Checkpoint);
    std::remove(p.c_str());
  }
  auto p = tmp_path("garbage.pt");
  std::string g = "PK\x03\x04";
  for (int i = 0; i < 5000; ++i) g.push_back(static_cast<char>(rng() & 0xff));
  write_all(p, g);
  EXPECT_THROWS_CODE(cxr::read_torch_file(p), Checkpoint);
  std::remove(p.c_str());
}

// Random mutations of data.pkl inside a valid archive (so the zip CRCs pass and the unpickler sees them):
// each read must succeed or throw cxr::Error; anything else (a crash, a c10::Error) fails the test.
CXR_TEST(mutated_pickles_never_crash) {
  const auto src = fixture("openai-state-dict.pt");
  caffe2::serialize::PyTorchStreamReader reader(src);
  std::map<std::string, std::string> records;
  for (auto& name : reader.getAllRecords()) {
    if (name == "version" || name == ".data/version") continue;
    auto rec = reader.getRecord(name);
    records[name] = std::string(static_cast<const char*>(std::get<0>(rec).get()), std::get<1>(rec));
  }
  EXPECT_TRUE(records.count("data.pkl") == 1);
  const std::string pkl = records["data.pkl"];
  std::mt19937 rng(1234);
  int ok = 0, rejected = 0;
  for (int it = 0; it < 400; ++it) {
    std::string m = pkl;
    int kind = it % 4;
    if (kind == 3) {
      m = m.substr(0, rng() % m.size());
    } else {
      int flips = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < flips; ++k) m[rng() % m.size()] = static_cast<char>(rng() & 0xff);
    }
    auto p = tmp_path("mut.pt");
    {
      caffe2::serialize::PyTorchStreamWriter w(p);
      for (auto& kv : records) {
        const std::string& data = kv.first == "data.pkl" ? m : kv.second;
        w.writeRecord(kv.first, data.data(), data.size());
      }
      w.writeEndOfFile();
    }
    try {
      auto f = cxr::read_torch_file(p);
      ++ok;
    } catch (const cxr::Error& e) {
      EXPECT_TRUE(e.code() == cxr::ErrorCode::Checkpoint);
      ++rejected;
    }
    std::remove(p.c_str());
  }
  std::printf("  mutated pickles: %d read, %d rejected with E_CHECKPOINT\n", ok, rejected);
  EXPECT_TRUE(rejected > 100);
}

// A pickle whose 30 levels each hold the previous level's list four times (through the memo) describes
// 4^30 paths: the reader walks each shared container once, so it answers at once instead of never.
CXR_TEST(shared_memo_references_are_walked_once) {
  std::string pkl = "\x80\x02]q";
  pkl += '\0';
  const int levels = 30;
  for (int i = 1; i <= levels; ++i) {
    pkl += "]q";
    pkl += static_cast<char>(i);
    pkl += '(';
    for (int k = 0; k < 4; ++k) {
      pkl += 'h';
      pkl += static_cast<char>(i - 1);
    }
    pkl += "e0";  // APPENDS, then POP the level (it stays in the memo)
  }
  pkl += 'h';
  pkl += static_cast<char>(levels);
  pkl += '.';
  auto p = tmp_path("shared.pt");
  {
    caffe2::serialize::PyTorchStreamWriter w(p);
    w.writeRecord("data.pkl", pkl.data(), pkl.size());
    w.writeEndOfFile();
  }
  const auto t0 = std::chrono::steady_clock::now();
  bool answered = false;
  try {
    auto f = cxr::read_torch_file(p);
    answered = f.tensors.empty();
  } catch (const cxr::Error& e) {
    answered = e.code() == cxr::ErrorCode::Checkpoint;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::remove(p.c_str());
  std::printf("  %d shared levels read in %.3f s\n", levels, s);
  EXPECT_TRUE(answered);
  EXPECT_TRUE(s < 2.0);
}

CXR_TEST_MAIN()
