{
  "targets": [
    {
      "target_name": "kiln_native",
      "sources": [
        "native/kiln_native.c",
        "native/tree-walk.c"
      ],
      "libraries": [
        "-lpthread"
      ],
      "cflags": [
        "-O2",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "_GNU_SOURCE"
      ]
    },
    {
      "target_name": "kiln-isolate",
      "type": "executable",
      "sources": [
        "native/kiln-isolate.c"
      ],
      "ldflags": [
        "<!@(sh scripts/static-ldflags.sh)"
      ],
      "cflags": [
        "-O2",
        "-Wall",
        "-Wextra"
      ],
      "defines": [
        "_GNU_SOURCE"
      ]
    }
  ]
}
