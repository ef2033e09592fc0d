# Reference kernels: exact numerics of the C++ reference (spec section 8).
set(BITNET_REFERENCE_KERNEL_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/half.cpp
  ${CMAKE_CURRENT_LIST_DIR}/expf.cpp
  ${CMAKE_CURRENT_LIST_DIR}/quant.cpp
  ${CMAKE_CURRENT_LIST_DIR}/dot.cpp
  ${CMAKE_CURRENT_LIST_DIR}/matmul.cpp
  ${CMAKE_CURRENT_LIST_DIR}/norm_rope.cpp
  ${CMAKE_CURRENT_LIST_DIR}/attention.cpp
)
target_sources(reference PRIVATE ${BITNET_REFERENCE_KERNEL_SOURCES})
# Every rounding step is written out (std::fma where the reference fused): the compiler must
# not fuse anything else, whatever -march or -std=gnu++ a build uses.
set_source_files_properties(${BITNET_REFERENCE_KERNEL_SOURCES} PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")
