# System packages only (Debian): Eigen, nlohmann/json, doctest, stb, OpenBLAS, zlib, threads.
find_package(Threads REQUIRED)
find_package(Eigen3 3.3 REQUIRED NO_MODULE)
find_package(nlohmann_json 3 REQUIRED)
find_package(ZLIB REQUIRED)

find_path(STB_INCLUDE_DIR stb_image.h PATH_SUFFIXES stb)
if(NOT STB_INCLUDE_DIR)
  message(FATAL_ERROR "stb headers not found: install libstb-dev (scripts/setup.sh does)")
endif()

# Debian's libstb-dev ships the compiled implementations (libstb): never define
# STB_*_IMPLEMENTATION in our sources.
find_library(STB_LIBRARY NAMES stb)
if(NOT STB_LIBRARY)
  message(FATAL_ERROR "libstb not found: install libstb-dev (scripts/setup.sh does)")
endif()

find_path(OPENBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas openblas-pthread)
find_library(OPENBLAS_LIBRARY NAMES openblas)
if(NOT OPENBLAS_INCLUDE_DIR OR NOT OPENBLAS_LIBRARY)
  message(FATAL_ERROR "OpenBLAS not found: install libopenblas-dev (scripts/setup.sh does)")
endif()

add_library(memel_deps INTERFACE)
target_include_directories(memel_deps INTERFACE ${STB_INCLUDE_DIR} ${OPENBLAS_INCLUDE_DIR})
target_link_libraries(memel_deps INTERFACE Eigen3::Eigen nlohmann_json::nlohmann_json ZLIB::ZLIB ${STB_LIBRARY}
                      ${OPENBLAS_LIBRARY} Threads::Threads)

# Open MPI (libopenmpi-dev) for data-parallel runs (dist/); without it a build runs one
# process and refuses a multi-process mpirun.
find_package(MPI COMPONENTS CXX QUIET)
if(MPI_CXX_FOUND)
  target_link_libraries(memel_deps INTERFACE MPI::MPI_CXX)
  target_compile_definitions(memel_deps INTERFACE MEMEL_WITH_MPI)
  message(STATUS "memel: MPI found")
else()
  message(STATUS "memel: MPI not found; data-parallel runs disabled")
endif()
