# Reference kernels: exact numerics of the C++ reference (spec section 8).
target_sources(runtime PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/half.cpp
)
