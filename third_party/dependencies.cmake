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

# oneDNN (libdnnl-dev) for single-precision GEMM where OpenBLAS does not know the processor
# (tensor/cpu/blas.h, MEMEL_CPU_GEMM). Debian's oneDNN runs on OpenMP; memel calls it one
# thread per call from its own pool, so it needs omp_set_num_threads from libgomp (linked
# directly: no -fopenmp, which would also switch on Eigen's own OpenMP threading).
find_path(DNNL_INCLUDE_DIR oneapi/dnnl/dnnl.h)
find_library(DNNL_LIBRARY NAMES dnnl)
find_library(GOMP_LIBRARY NAMES gomp libgomp.so.1 PATHS /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu)
if(DNNL_INCLUDE_DIR AND DNNL_LIBRARY AND GOMP_LIBRARY)
  target_include_directories(memel_deps INTERFACE ${DNNL_INCLUDE_DIR})
  target_link_libraries(memel_deps INTERFACE ${DNNL_LIBRARY} ${GOMP_LIBRARY})
  # Only tensor/cpu/blas.cpp calls oneDNN.
  set_source_files_properties(${CMAKE_CURRENT_SOURCE_DIR}/tensor/cpu/blas.cpp PROPERTIES COMPILE_DEFINITIONS MEMEL_WITH_ONEDNN)
  message(STATUS "memel: oneDNN found (${DNNL_LIBRARY})")
else()
  message(STATUS "memel: oneDNN not found (libdnnl-dev); single-precision GEMM through OpenBLAS only")
endif()

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
