{
  "targets": [
    {
      "target_name": "kiln_native",
      "sources": ["native/kiln_native.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
