# Tokenizers (SentencePiece-style, byte-level BPE, Hugging Face tokenizer.json).
target_sources(runtime PRIVATE
)
