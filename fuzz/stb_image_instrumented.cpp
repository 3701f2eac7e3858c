// stb_image's implementation from Debian's libstb-dev header, compiled here so that the
// fuzz targets that decode images get coverage feedback and sanitizer checks inside the
// decoder too (Debian's libstb.so is not instrumented). The definitions in this object
// take precedence over libstb's at link time. Only the fuzz build compiles this file; the
// library itself uses Debian's compiled libstb (architecture.md).
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
