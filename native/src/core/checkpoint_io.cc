// Checkpoint files as data. Why not torch::pickle_load / torch::jit::unpickle: libtorch 1.13's unpickler
// turns `collections.OrderedDict` into None (so `model.state_dict()` saved by torch.save, the common case,
// fails in SETITEMS) and it trusts the stack shape of its input (BUILD/REDUCE index below the stack on a
// crafted file). The unpickler here is a small strict VM: every read is bounds-checked, the stack and the
// memo are checked before use, and only the globals a tensor checkpoint needs are accepted. The zip archive
// itself is read by libtorch's PyTorchStreamReader (miniz), and TorchScript by torch::jit::load.
#include "cxr/checkpoint_io.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/script.h>

#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <unordered_map>
#include <unordered_set>

namespace cxr {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(ErrorCode::Checkpoint, path + ": " + what);
}

std::string first_line(const char* msg) {
  std::string m(msg);
  auto nl = m.find('\n');
  return nl == std::string::npos ? m : m.substr(0, nl);
}

// ---- values of the data-only unpickler ---------------------------------------------------------------
struct Obj;
using Val = std::shared_ptr<Obj>;
struct Obj {
  enum Kind { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Tensor, Mark } kind = None;
  int64_t i = 0;
  double f = 0;
  std::string s;            // Str, Bytes, Global ("module.name")
  std::vector<Val> items;   // Tuple, List; Dict: key, value, key, value, ...
  torch::Tensor t;          // Tensor (a storage is a 1-D tensor of its element type)
};
Val make(Obj::Kind k) {
  auto v = std::make_shared<Obj>();
  v->kind = k;
  return v;
}
Val make_int(int64_t i) {
  auto v = make(Obj::Int);
  v->i = i;
  return v;
}
Val make_str(std::string s, Obj::Kind k = Obj::Str) {
  auto v = make(k);
  v->s = std::move(s);
  return v;
}

const char* kind_name(Obj::Kind k) {
  switch (k) {
    case Obj::None: return "None";
    case Obj::Bool: return "bool";
    case Obj::Int: return "int";
    case Obj::Float: return "float";
    case Obj::Str: return "str";
    case Obj::Bytes: return "bytes";
    case Obj::Tuple: return "tuple";
    case Obj::List: return "list";
    case Obj::Dict: return "dict";
    case Obj::Global: return "global";
    case Obj::Tensor: return "tensor";
    case Obj::Mark: return "mark";
  }
  return "?";
}

// torch.<Name>Storage → element type (the names torch.save writes, also from PyTorch 2.x).
bool storage_dtype(const std::string& name, c10::ScalarType& out) {
  static const std::map<std::string, c10::ScalarType> m{
      {"torch.FloatStorage", c10::kFloat},   {"torch.HalfStorage", c10::kHalf},   {"torch.BFloat16Storage", c10::kBFloat16},
      {"torch.DoubleStorage", c10::kDouble}, {"torch.LongStorage", c10::kLong},   {"torch.IntStorage", c10::kInt},
      {"torch.ShortStorage", c10::kShort},   {"torch.CharStorage", c10::kChar},   {"torch.ByteStorage", c10::kByte},
      {"torch.BoolStorage", c10::kBool}};
  auto it = m.find(name);
  if (it == m.end()) return false;
  out = it->second;
  return true;
}

class Unpickler {
 public:
  Unpickler(const std::string& path, const uint8_t* data, size_t size, caffe2::serialize::PyTorchStreamReader& zip)
      : path_(path), p_(data), end_(data + size), zip_(zip) {}

  // Containers can be nested (or made cyclic through the memo) arbitrarily deep by a crafted file: tear them
  // down iteratively so that destruction never recurses.
  ~Unpickler() {
    std::vector<Val> work;
    work.swap(stack_);
    work.insert(work.end(), memo_.begin(), memo_.end());
    memo_.clear();
    while (!work.empty()) {
      Val v = std::move(work.back());
      work.pop_back();
      if (!v) continue;
      for (auto& c : v->items) work.push_back(std::move(c));
      v->items.clear();
    }
  }

  Val run() {
    while (true) {
      uint8_t op = u8();
      if (op == '.') break;
      step(op);
    }
    check(stack_.size() == 1, "malformed pickle: the stack holds " + std::to_string(stack_.size()) + " values at STOP");
    return stack_.back();
  }

 private:
  void check(bool c, const std::string& what) {
    if (!c) fail(path_, what);
  }
  void need(size_t n) { check(static_cast<size_t>(end_ - p_) >= n, "truncated data.pkl (the pickle ends early)"); }
  uint8_t u8() {
    need(1);
    return *p_++;
  }
  template <typename T>
  T le() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, p_, sizeof(T));
    p_ += sizeof(T);
    return v;
  }
  std::string bytes(uint64_t n) {
    need(n);
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }
  std::string line() {
    const uint8_t* q = p_;
    while (q < end_ && *q != '\n') ++q;
    check(q < end_, "truncated data.pkl (unterminated GLOBAL)");
    std::string s(reinterpret_cast<const char*>(p_), q - p_);
    p_ = q + 1;
    return s;
  }
  Val pop() {
    check(!stack_.empty(), "malformed pickle: pop from an empty stack");
    check(marks_.empty() || stack_.size() > marks_.back(), "malformed pickle: pop across a MARK");
    Val v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Val& top() {
    check(!stack_.empty() && (marks_.empty() || stack_.size() > marks_.back()), "malformed pickle: empty stack");
    return stack_.back();
  }
  std::vector<Val> pop_mark() {
    check(!marks_.empty(), "malformed pickle: no MARK");
    size_t m = marks_.back();
    marks_.pop_back();
    check(m <= stack_.size(), "malformed pickle: bad MARK");
    std::vector<Val> out(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return out;
  }
  void memo_put(uint64_t id) {
    check(id <= memo_.size() + 1024, "malformed pickle: memo id " + std::to_string(id) + " out of sequence");
    if (memo_.size() <= id) memo_.resize(id + 1);
    memo_[id] = top();
  }
  Val memo_get(uint64_t id) {
    check(id < memo_.size() && memo_[id], "malformed pickle: memo id " + std::to_string(id) + " was never stored");
    return memo_[id];
  }
  void push(Val v) {
    check(stack_.size() < (size_t{1} << 24), "malformed pickle: stack too deep");
    stack_.push_back(std::move(v));
  }
  Val tuple_of(std::vector<Val> items) {
    auto t = make(Obj::Tuple);
    t->items = std::move(items);
    return t;
  }
  void set_items(Val& dict, const std::vector<Val>& kv) {
    check(dict->kind == Obj::Dict, std::string("malformed pickle: SETITEMS on a ") + kind_name(dict->kind));
    check(kv.size() % 2 == 0, "malformed pickle: odd number of dict items");
    for (size_t i = 0; i < kv.size(); i += 2) {
      dict->items.push_back(kv[i]);
      dict->items.push_back(kv[i + 1]);
    }
  }
  void append_items(Val& list, const std::vector<Val>& v) {
    check(list->kind == Obj::List, std::string("malformed pickle: APPENDS on a ") + kind_name(list->kind));
    list->items.insert(list->items.end(), v.begin(), v.end());
  }
  int64_t as_int(const Val& v, const char* what) {
    check(v->kind == Obj::Int || v->kind == Obj::Bool, std::string("unsupported object: ") + what + " must be an int");
    return v->i;
  }
  std::vector<int64_t> int_tuple(const Val& v, const char* what) {
    check(v->kind == Obj::Tuple || v->kind == Obj::List, std::string("unsupported object: ") + what + " must be a tuple");
    std::vector<int64_t> out;
    for (auto& e : v->items) out.push_back(as_int(e, what));
    return out;
  }

  // GLOBAL → only the names a tensor checkpoint needs; anything else could run code in Python.
  Val global(const std::string& mod, const std::string& name) {
    std::string full = mod + "." + name;
    static const char* allowed[] = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                    "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter",
                                    "torch._utils._rebuild_parameter_with_state"};
    c10::ScalarType st;
    bool ok = storage_dtype(full, st);
    for (auto* a : allowed) ok = ok || full == a;
    check(ok, "unsupported object '" + full +
                  "' in the pickle: only tensors, dicts, lists, tuples, strings and numbers are read (this file may "
                  "hold Python objects or code; save a state_dict instead)");
    return make_str(full, Obj::Global);
  }

  Val reduce(const Val& fn, const Val& args) {
    check(fn->kind == Obj::Global, std::string("unsupported object: REDUCE of a ") + kind_name(fn->kind));
    check(args->kind == Obj::Tuple, "malformed pickle: REDUCE arguments are not a tuple");
    const auto& a = args->items;
    const std::string& g = fn->s;
    if (g == "collections.OrderedDict") {
      auto d = make(Obj::Dict);
      if (!a.empty()) {  // OrderedDict([(k, v), ...])
        check(a.size() == 1 && a[0]->kind == Obj::List, "unsupported OrderedDict arguments");
        for (auto& kv : a[0]->items) {
          check(kv->kind == Obj::Tuple && kv->items.size() == 2, "unsupported OrderedDict item");
          d->items.push_back(kv->items[0]);
          d->items.push_back(kv->items[1]);
        }
      }
      return d;
    }
    if (g == "torch._utils._rebuild_tensor_v2" || g == "torch._utils._rebuild_tensor") {
      check(a.size() >= 4, "malformed tensor record (" + g + " with " + std::to_string(a.size()) + " arguments)");
      check(a[0]->kind == Obj::Tensor, "malformed tensor record: no storage");
      const auto& storage = a[0]->t;
      int64_t offset = as_int(a[1], "storage offset");
      auto size = int_tuple(a[2], "tensor size");
      auto stride = int_tuple(a[3], "tensor stride");
      check(size.size() == stride.size(), "malformed tensor record: size and stride differ in length");
      // The furthest element the view touches must lie inside the storage (as_strided does not check).
      // 128-bit arithmetic: crafted sizes must not overflow past the check.
      __int128 last = offset, count = 1;
      bool empty = false;
      check(offset >= 0 && size.size() <= 16, "malformed tensor record: negative storage offset or too many dims");
      for (size_t d = 0; d < size.size(); ++d) {
        check(size[d] >= 0 && stride[d] >= 0 && size[d] < (int64_t{1} << 40) && stride[d] < (int64_t{1} << 40),
              "malformed tensor record: bad size or stride");
        if (size[d] == 0) empty = true;
        last += static_cast<__int128>(size[d] - (size[d] > 0 ? 1 : 0)) * stride[d];
        count *= size[d];
      }
      if (empty) return tensor_val(torch::empty(size, storage.options()));
      // A stride-0 view may repeat elements, but never beyond what a checkpoint plausibly holds.
      check(count <= (static_cast<__int128>(storage.numel()) << 4) + 1024, "malformed tensor record: view far larger than its storage");
      check(last < storage.numel(), "tensor view runs past its storage (" + std::to_string(storage.numel()) +
                                        " elements)");
      return tensor_val(storage.as_strided(size, stride, offset));
    }
    if (g == "torch._utils._rebuild_parameter" || g == "torch._utils._rebuild_parameter_with_state") {
      check(!a.empty() && a[0]->kind == Obj::Tensor, "malformed parameter record");
      return a[0];
    }
    fail(path_, "unsupported object: a call of " + g);
  }

  Val tensor_val(torch::Tensor t) {
    auto v = make(Obj::Tensor);
    v->t = std::move(t);
    return v;
  }

  // BINPERSID ("storage", torch.<T>Storage, key, location, numel) → the record data/<key> as a 1-D tensor.
  Val persistent(const Val& pid) {
    check(pid->kind == Obj::Tuple && pid->items.size() >= 5, "unsupported persistent id in the pickle");
    const auto& a = pid->items;
    check(a[0]->kind == Obj::Str && a[0]->s == "storage", "unsupported persistent id in the pickle");
    check(a[1]->kind == Obj::Global, "malformed storage record: no storage type");
    c10::ScalarType st;
    check(storage_dtype(a[1]->s, st), "unsupported storage type " + a[1]->s);
    check(a[2]->kind == Obj::Str, "malformed storage record: key");
    const std::string key = a[2]->s;
    int64_t numel = as_int(a[4], "storage size");
    check(numel >= 0, "malformed storage record: negative size");
    auto it = storages_.find(key);
    if (it != storages_.end()) return tensor_val(it->second);
    const std::string rec = "data/" + key;
    check(zip_.hasRecord(rec), "the archive has no record '" + rec + "' (truncated or damaged file?)");
    at::DataPtr ptr;
    size_t n = 0;
    try {
      std::tie(ptr, n) = zip_.getRecord(rec);
    } catch (const c10::Error& e) {
      fail(path_, "cannot read record '" + rec + "': " + first_line(e.what_without_backtrace()));
    }
    const size_t item = c10::elementSize(st);
    check(static_cast<uint64_t>(numel) <= n / item, "record '" + rec + "' holds " + std::to_string(n) +
                                                        " bytes, fewer than its " + std::to_string(numel) +
                                                        " elements need");
    auto t = torch::empty({numel}, torch::TensorOptions().dtype(st));
    if (numel > 0) std::memcpy(t.data_ptr(), ptr.get(), static_cast<size_t>(numel) * item);
    storages_[key] = t;
    return tensor_val(t);
  }

  void step(uint8_t op) {
    switch (op) {
      case 0x80: (void)u8(); break;                     // PROTO
      case 0x95: (void)le<uint64_t>(); break;           // FRAME
      case '(': marks_.push_back(stack_.size()); break;  // MARK
      case '}': push(make(Obj::Dict)); break;
      case ']': push(make(Obj::List)); break;
      case ')': push(make(Obj::Tuple)); break;
      case 'N': push(make(Obj::None)); break;
      case 0x88: { auto v = make(Obj::Bool); v->i = 1; push(v); } break;
      case 0x89: push(make(Obj::Bool)); break;
      case 'K': push(make_int(u8())); break;
      case 'M': push(make_int(le<uint16_t>())); break;
      case 'J': push(make_int(le<int32_t>())); break;
      case 0x8a: {  // LONG1: little-endian two's complement, up to 8 bytes here
        uint8_t n = u8();
        check(n <= 8, "unsupported integer wider than 64 bits");
        std::string b = bytes(n);
        uint64_t u = 0;
        for (int k = n - 1; k >= 0; --k) u = (u << 8) | static_cast<uint8_t>(b[k]);
        if (n > 0 && n < 8 && (static_cast<uint8_t>(b[n - 1]) & 0x80)) u |= ~uint64_t{0} << (8 * n);
        push(make_int(static_cast<int64_t>(u)));
      } break;
      case 'G': {  // BINFLOAT, big-endian
        std::string b = bytes(8);
        uint64_t u = 0;
        for (int k = 0; k < 8; ++k) u = (u << 8) | static_cast<uint8_t>(b[k]);
        auto v = make(Obj::Float);
        std::memcpy(&v->f, &u, 8);
        push(v);
      } break;
      case 'X': push(make_str(bytes(le<uint32_t>()))); break;
      case 0x8c: push(make_str(bytes(u8()))); break;
      case 0x8d: push(make_str(bytes(le<uint64_t>()))); break;
      case 'C': push(make_str(bytes(u8()), Obj::Bytes)); break;
      case 'B': push(make_str(bytes(le<uint32_t>()), Obj::Bytes)); break;
      case 'q': memo_put(u8()); break;
      case 'r': memo_put(le<uint32_t>()); break;
      case 0x94: memo_put(memo_.size()); break;  // MEMOIZE
      case 'h': push(memo_get(u8())); break;
      case 'j': push(memo_get(le<uint32_t>())); break;
      case 't': push(tuple_of(pop_mark())); break;
      case 0x85: { auto a = pop(); push(tuple_of({a})); } break;
      case 0x86: { auto b = pop(); auto a = pop(); push(tuple_of({a, b})); } break;
      case 0x87: { auto c = pop(); auto b = pop(); auto a = pop(); push(tuple_of({a, b, c})); } break;
      case 'l': { auto l = make(Obj::List); l->items = pop_mark(); push(l); } break;
      case 'd': { auto items = pop_mark(); auto d = make(Obj::Dict); set_items(d, items); push(d); } break;
      case 's': { auto v = pop(); auto k = pop(); set_items(top(), {k, v}); } break;
      case 'u': { auto items = pop_mark(); set_items(top(), items); } break;
      case 'a': { auto v = pop(); append_items(top(), {v}); } break;
      case 'e': { auto items = pop_mark(); append_items(top(), items); } break;
      case '0': (void)pop(); break;  // POP
      case '1': (void)pop_mark(); break;  // POP_MARK
      case 'c': { auto mod = line(); auto name = line(); push(global(mod, name)); } break;
      case 0x93: {  // STACK_GLOBAL
        auto name = pop();
        auto mod = pop();
        check(mod->kind == Obj::Str && name->kind == Obj::Str, "malformed pickle: STACK_GLOBAL");
        push(global(mod->s, name->s));
      } break;
      case 'R': { auto args = pop(); auto fn = pop(); push(reduce(fn, args)); } break;
      case 0x81: {  // NEWOBJ cls args: only OrderedDict() is plain data
        auto args = pop();
        auto cls = pop();
        check(cls->kind == Obj::Global && cls->s == "collections.OrderedDict",
              std::string("unsupported object: instance of ") + (cls->kind == Obj::Global ? cls->s : kind_name(cls->kind)));
        push(make(Obj::Dict));
      } break;
      case 'b': {  // BUILD: OrderedDict's `_metadata` and tensor state are dropped (not weights)
        auto state = pop();
        auto& obj = top();
        check(obj->kind == Obj::Dict || obj->kind == Obj::Tensor,
              std::string("unsupported object: BUILD of a ") + kind_name(obj->kind));
      } break;
      case 'Q': { auto pid = pop(); push(persistent(pid)); } break;
      default:
        fail(path_, "unsupported pickle opcode 0x" + [op] {
          const char* hx = "0123456789abcdef";
          return std::string{hx[op >> 4], hx[op & 15]};
        }() + " in data.pkl (not a tensor checkpoint, or a damaged file)");
    }
  }

  std::string path_;
  const uint8_t* p_;
  const uint8_t* end_;
  caffe2::serialize::PyTorchStreamReader& zip_;
  std::vector<Val> stack_;
  std::vector<size_t> marks_;
  std::vector<Val> memo_;
  std::unordered_map<std::string, torch::Tensor> storages_;
};

std::string key_string(const Val& k) {
  switch (k->kind) {
    case Obj::Str: return k->s;
    case Obj::Int: return std::to_string(k->i);
    default: return "";
  }
}

// Names every tensor reachable from `v` by its key path. A container reached again through the memo
// (pickles may share objects) is walked once: its tensors keep the names of the first path, and a pickle
// whose levels each hold the previous one several times costs linear, not exponential, time.
void flatten(const Val& v, const std::string& prefix, std::vector<NamedTensor>& out, int depth,
             std::unordered_set<const Obj*>& seen) {
  if (depth > 64) return;
  if ((v->kind == Obj::Dict || v->kind == Obj::List || v->kind == Obj::Tuple) && !seen.insert(v.get()).second) return;
  auto name = [&](const std::string& k) { return prefix.empty() ? k : prefix + "." + k; };
  if (v->kind == Obj::Tensor) {
    // A partial view would keep its whole storage alive: copy it to a compact tensor of its own. A tensor
    // that is its whole storage (the usual case) is taken as is, keeping the peak memory at one copy.
    const auto& t = v->t;
    const bool whole = t.is_contiguous() && t.storage_offset() == 0 &&
                       t.storage().nbytes() == static_cast<size_t>(t.numel()) * t.element_size();
    out.push_back({prefix, whole ? t : t.contiguous().clone()});
  } else if (v->kind == Obj::Dict) {
    for (size_t i = 0; i + 1 < v->items.size(); i += 2) {
      auto k = key_string(v->items[i]);
      if (!k.empty()) flatten(v->items[i + 1], name(k), out, depth + 1, seen);
    }
  } else if (v->kind == Obj::List || v->kind == Obj::Tuple) {
    for (size_t i = 0; i < v->items.size(); ++i) flatten(v->items[i], name(std::to_string(i)), out, depth + 1, seen);
  }
}

TorchFile read_torchscript(const std::string& path) {
  TorchFile f;
  f.kind = TorchFileKind::TorchScript;
  torch::jit::Module m;
  try {
    m = torch::jit::load(path, torch::kCPU);
  } catch (const c10::Error& e) {
    fail(path, "cannot load the TorchScript archive (" + first_line(e.what_without_backtrace()) +
                   "); in Python, torch.save(torch.jit.load(f).state_dict(), f2) gives a file read as plain data");
  } catch (const std::exception& e) {
    fail(path, std::string("cannot load the TorchScript archive: ") + e.what());
  }
  for (const auto& p : m.named_parameters(/*recurse=*/true)) f.tensors.push_back({p.name, p.value.detach().clone()});
  for (const auto& b : m.named_buffers(/*recurse=*/true)) f.tensors.push_back({b.name, b.value.detach().clone()});
  return f;
}

}  // namespace

TorchFile read_torch_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::Io, path + ": cannot open the file (missing or unreadable)");
  char magic[4] = {0, 0, 0, 0};
  in.read(magic, 4);
  const auto got = in.gcount();
  in.close();
  if (got < 4) fail(path, "file too short to be a checkpoint (" + std::to_string(got) + " bytes)");
  if (static_cast<uint8_t>(magic[0]) == 0x80 && magic[1] >= 2 && magic[1] <= 5)
    fail(path, "legacy (pre-1.6, non-zip) torch.save format is not supported: re-save it in a recent PyTorch with "
               "torch.save(torch.load(f), f2), or convert it to safetensors");
  if (!(magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4))
    fail(path, "not a PyTorch checkpoint (not a zip archive)");

  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip;
  try {
    zip = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& e) {
    fail(path, "damaged or truncated zip archive: " + first_line(e.what_without_backtrace()));
  }
  try {
    if (zip->hasRecord("constants.pkl")) {
      zip.reset();
      return read_torchscript(path);
    }
    if (!zip->hasRecord("data.pkl")) fail(path, "zip archive without data.pkl: not a torch.save checkpoint");
    at::DataPtr pkl;
    size_t n = 0;
    std::tie(pkl, n) = zip->getRecord("data.pkl");
    Unpickler up(path, static_cast<const uint8_t*>(pkl.get()), n, *zip);
    Val root = up.run();
    TorchFile f;
    f.kind = TorchFileKind::TorchSave;
    std::unordered_set<const Obj*> seen;
    flatten(root, "", f.tensors, 0, seen);
    if (f.tensors.empty()) fail(path, std::string("no tensors in the checkpoint (its top object is a ") + kind_name(root->kind) + ")");
    return f;
  } catch (const c10::Error& e) {
    fail(path, "damaged or truncated archive: " + first_line(e.what_without_backtrace()));
  }
}

}  // namespace cxr
