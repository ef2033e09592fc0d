# Plans on the runtime side: reading and verifying them, checking them against this CPU and
# the model, loading their code (memfd + dlopen), the cache directory, and writing them (plain
# FlatBuffers; the compiler that fills them is elsewhere). No LLVM.
target_link_libraries(runtime PUBLIC plan_schema PRIVATE PkgConfig::XXHASH ${CMAKE_DL_LIBS})
target_sources(runtime PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/plan_format.cpp
  ${CMAKE_CURRENT_LIST_DIR}/plan_cpu.cpp
  ${CMAKE_CURRENT_LIST_DIR}/plan_files.cpp
  ${CMAKE_CURRENT_LIST_DIR}/plan_graph.cpp
  ${CMAKE_CURRENT_LIST_DIR}/plan_check.cpp
  ${CMAKE_CURRENT_LIST_DIR}/plan_code.cpp
  ${CMAKE_CURRENT_LIST_DIR}/plan_reader.cpp
  ${CMAKE_CURRENT_LIST_DIR}/plan_writer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/plan_model.cpp
  ${CMAKE_CURRENT_LIST_DIR}/plan_cache.cpp
  ${CMAKE_CURRENT_LIST_DIR}/cuda_module_file.cpp
  ${CMAKE_CURRENT_LIST_DIR}/progress.cpp
)
