// SentencePiece ModelProto decoding (see sentencepiece_model.h). Field numbers are those of
// sentencepiece_model.proto: ModelProto.pieces = 1, trainer_spec = 2, normalizer_spec = 3;
// SentencePiece.piece = 1, score = 2, type = 3; NormalizerSpec.add_dummy_prefix = 3;
// TrainerSpec.unk_id = 40, bos_id = 41, eos_id = 42, pad_id = 43.
#include "convert/sentencepiece_model.h"

#include "frontend_gguf/mapped_file.h"

#include <cstring>

namespace bitnet::convert {
namespace {

// A protobuf wire-format cursor over one message.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : data_(bytes) {}
  bool done() const { return pos_ >= data_.size(); }

  Expected<uint64_t> varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return make_error("tokenizer.model: truncated varint");
      const auto b = static_cast<uint8_t>(data_[pos_++]);
      v |= uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80u) == 0) return v;
    }
    return make_error("tokenizer.model: varint longer than 10 bytes");
  }
  Expected<std::string_view> bytes(uint64_t n) {
    if (n > data_.size() - pos_) return make_error("tokenizer.model: a field runs past the end of its message");
    std::string_view out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  // Reads one field: its number, wire type, and (for varint/fixed) the value or (for length-
  // delimited) the bytes.
  struct Field {
    uint64_t number = 0;
    uint32_t wire = 0;
    uint64_t value = 0;
    std::string_view payload;
  };
  Expected<Field> field() {
    Field f;
    BITNET_ASSIGN_OR_RETURN(const uint64_t key, varint());
    f.number = key >> 3;
    f.wire = static_cast<uint32_t>(key & 7);
    switch (f.wire) {
      case 0: {
        BITNET_ASSIGN_OR_RETURN(f.value, varint());
        return f;
      }
      case 1: {
        BITNET_ASSIGN_OR_RETURN(auto b, bytes(8));
        std::memcpy(&f.value, b.data(), 8);
        return f;
      }
      case 2: {
        BITNET_ASSIGN_OR_RETURN(const uint64_t n, varint());
        BITNET_ASSIGN_OR_RETURN(f.payload, bytes(n));
        return f;
      }
      case 5: {
        BITNET_ASSIGN_OR_RETURN(auto b, bytes(4));
        uint32_t v;
        std::memcpy(&v, b.data(), 4);
        f.value = v;
        return f;
      }
      default:
        return make_error("tokenizer.model: unsupported protobuf wire type {}", f.wire);
    }
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

// SentencePiece.Type -> llama.cpp token type (NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4,
// UNUSED 5, BYTE 6: the same numbers).
Expected<gguf::TokenType> piece_type(uint64_t v) {
  if (v < 1 || v > 6) return make_error("tokenizer.model: unknown piece type {}", v);
  return static_cast<gguf::TokenType>(v);
}

Expected<SpmPiece> parse_piece(std::string_view bytes) {
  SpmPiece p;
  Reader r(bytes);
  while (!r.done()) {
    BITNET_ASSIGN_OR_RETURN(auto f, r.field());
    if (f.number == 1 && f.wire == 2) {
      p.text = std::string(f.payload);
    } else if (f.number == 2 && f.wire == 5) {
      const auto bits = static_cast<uint32_t>(f.value);
      std::memcpy(&p.score, &bits, 4);
    } else if (f.number == 3 && f.wire == 0) {
      BITNET_ASSIGN_OR_RETURN(p.type, piece_type(f.value));
    }
  }
  return p;
}

std::optional<int64_t> special_id(uint64_t v) {
  const auto id = static_cast<int32_t>(static_cast<uint32_t>(v));  // int32 fields, two's complement
  return id < 0 ? std::nullopt : std::optional<int64_t>(id);
}

}  // namespace

Expected<SpmModel> parse_sentencepiece_model(std::string_view bytes) {
  SpmModel m;
  m.special = {0, 1, 2, std::nullopt};  // TrainerSpec defaults: unk 0, bos 1, eos 2, pad -1
  Reader r(bytes);
  while (!r.done()) {
    BITNET_ASSIGN_OR_RETURN(auto f, r.field());
    if (f.number == 1 && f.wire == 2) {
      BITNET_ASSIGN_OR_RETURN(SpmPiece p, parse_piece(f.payload));
      m.pieces.push_back(std::move(p));
    } else if (f.number == 2 && f.wire == 2) {
      Reader t(f.payload);
      while (!t.done()) {
        BITNET_ASSIGN_OR_RETURN(auto g, t.field());
        if (g.wire != 0) continue;
        if (g.number == 40) m.special.unk = special_id(g.value);
        if (g.number == 41) m.special.bos = special_id(g.value);
        if (g.number == 42) m.special.eos = special_id(g.value);
        if (g.number == 43) m.special.pad = special_id(g.value);
      }
    } else if (f.number == 3 && f.wire == 2) {
      Reader n(f.payload);
      while (!n.done()) {
        BITNET_ASSIGN_OR_RETURN(auto g, n.field());
        if (g.number == 3 && g.wire == 0) m.add_dummy_prefix = g.value != 0;
      }
    }
  }
  if (m.pieces.empty()) return make_error("tokenizer.model holds no pieces");
  return m;
}

Expected<SpmModel> read_sentencepiece_model(const std::string& path) {
  BITNET_ASSIGN_OR_RETURN(auto mapped, gguf::MappedFile::open(path));
  const auto b = mapped->bytes();
  auto result = parse_sentencepiece_model(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
  if (!result.ok()) return make_error("{}: {}", path, result.error().message);
  return result;
}

}  // namespace bitnet::convert
