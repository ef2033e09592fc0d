// A program that links only lib/libbitnet.so and the public headers, as a user's would:
// load a model, decode a prompt, sample greedily. Exit 0 with the generated ids on stdout.
#include "bitnet/bitnet.h"

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MODEL\n", argv[0]);
    return 2;
  }
  auto model = bitnet::Model::load(argv[1], {.use_cache = false});
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.error().message.c_str());
    return 1;
  }
  auto ctx = bitnet::Context::create(*model, {.n_ctx = 64, .threads = 1});
  auto sampler = bitnet::Sampler::create({.temperature = 0});
  if (!ctx.ok() || !sampler.ok()) return 1;
  const auto ids = (*model)->vocab().tokenize("Once upon a time", true, false);
  bitnet::Batch batch;
  for (size_t i = 0; i < ids.size(); ++i) batch.add(ids[i], static_cast<int64_t>(i), {0}, i + 1 == ids.size());
  for (int step = 0; step < 8; ++step) {
    if (!(*ctx)->decode(batch).ok()) return 1;
    const bitnet::Token t = sampler->sample((*ctx)->logits(-1));
    sampler->accept(t);
    std::printf("%d ", t);
    batch.clear();
    batch.add(t, static_cast<int64_t>(ids.size()) + step, {0}, true);
  }
  std::printf("\n");
  return 0;
}
