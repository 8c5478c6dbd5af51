{
  "variables": {
    "torch_prefix%": "<!(node -p \"process.env.LIBTORCH || '/usr'\")"
  },
  "targets": [
    {
      "target_name": "cxr_native",
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('native/src/core').filter(f => f.endsWith('.cc') && !f.endsWith('_cuda.cc')).map(f => 'native/src/core/' + f).join(' ')\")",
        "<!@(node -p \"require('fs').readdirSync('native/src/binding').filter(f => f.endsWith('.cc')).map(f => 'native/src/binding/' + f).join(' ')\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native/include",
        "<(torch_prefix)/include",
        "<(torch_prefix)/include/torch/csrc/api/include"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_CPP_EXCEPTIONS",
        "NODE_ADDON_API_CPP_EXCEPTIONS_ALL",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "_GLIBCXX_USE_CXX11_ABI=1"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2"],
      "libraries": [
        "-L<(torch_prefix)/lib",
        "-Wl,-rpath,<(torch_prefix)/lib",
        "-ltorch",
        "-ltorch_cpu",
        "-lc10"
      ]
    }
  ]
}
