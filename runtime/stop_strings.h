// Stop strings over streamed text: text is released as soon as it cannot be the start of a
// stop string, so a stop string never reaches the caller, even when it arrives split across
// tokens (what OpenAI's `stop` and llama-server promise).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace bitnet::runtime {

class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops);

  struct Pushed {
    std::string released;  // final text, before any stop string
    bool stopped = false;  // a stop string was found: nothing after it is released
  };
  // Appends `text`; releases what can no longer begin a stop string.
  Pushed push(std::string_view text);
  // The end of the stream without a stop string: everything held back.
  std::string flush();

 private:
  std::vector<std::string> stops_;  // non-empty strings only
  std::string held_;
};

}  // namespace bitnet::runtime
