{
  "targets": [
    {
      "target_name": "kiln",
      "sources": ["<!@(node scripts/sources.js)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "KILN_VERSION=\"<!(node -p \"require('./package.json').version\")\""],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++20", "-O3", "-fexceptions", "-Wno-unused-parameter"],
      "ldflags": ["-pthread"]
    }
  ]
}
