# Tokenizers (SentencePiece-style, byte-level BPE, Hugging Face tokenizer.json).
# PCRE2 (UTF + UCP, JIT) runs the BPE pre-tokenizer regexes (\p{L}, lookahead).
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
target_link_libraries(runtime PRIVATE PkgConfig::PCRE2 nlohmann_json::nlohmann_json)
target_sources(runtime PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/string_index.cpp
  ${CMAKE_CURRENT_LIST_DIR}/tokenizer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/tokenizer_bpe.cpp
  ${CMAKE_CURRENT_LIST_DIR}/tokenizer_hf.cpp
  ${CMAKE_CURRENT_LIST_DIR}/tokenizer_pretype.cpp
  ${CMAKE_CURRENT_LIST_DIR}/tokenizer_regex.cpp
  ${CMAKE_CURRENT_LIST_DIR}/tokenizer_spm.cpp
  ${CMAKE_CURRENT_LIST_DIR}/tokenizer_unicode.cpp
  ${CMAKE_CURRENT_LIST_DIR}/tokenizer_vocab.cpp
)
