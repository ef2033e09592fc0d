#include "codegen_cuda/ptxas_report.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace bitnet::codegen_cuda {

namespace {

// The number written just before `suffix` in `line` ("40 registers" -> 40), or -1.
int number_before(const std::string& line, const char* suffix) {
  const size_t at = line.find(suffix);
  if (at == std::string::npos) return -1;
  size_t begin = at;
  while (begin > 0 && std::isdigit(static_cast<unsigned char>(line[begin - 1]))) --begin;
  return begin == at ? -1 : std::atoi(line.c_str() + begin);
}

// The text between the quotes that follow `key` ("for 'sm_90'" -> sm_90), or "".
std::string quoted_after(const std::string& line, const char* key) {
  const size_t at = line.find(key);
  if (at == std::string::npos) return "";
  const size_t open = at + std::strlen(key);
  const size_t close = line.find('\'', open);
  return close == std::string::npos ? "" : line.substr(open, close - open);
}

}  // namespace

// Lines of interest (CUDA 13):
//   ptxas info    : Compiling entry function 'NAME' for 'sm_90'
//   ptxas info    : Function properties for NAME
//       0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
//   ptxas info    : Used 40 registers, used 1 barriers, 128 bytes smem, 380 bytes cmem[0]
std::vector<PtxasEntry> parse_ptxas_report(const std::string& text) {
  std::vector<PtxasEntry> entries;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find("Compiling entry function '") != std::string::npos) {
      entries.push_back(PtxasEntry{quoted_after(line, "entry function '"), quoted_after(line, "' for '")});
      continue;
    }
    if (entries.empty()) continue;
    PtxasEntry& e = entries.back();
    if (line.find(" bytes stack frame") != std::string::npos) {
      e.stack_frame_bytes = number_before(line, " bytes stack frame");
      e.spill_store_bytes = number_before(line, " bytes spill stores");
      e.spill_load_bytes = number_before(line, " bytes spill loads");
    }
    if (const int r = number_before(line, " registers"); r >= 0 && line.find("Used ") != std::string::npos) {
      e.registers = r;
    }
    if (const int b = number_before(line, " bytes smem"); b >= 0) e.shared_bytes = b;
  }
  return entries;
}

Expected<std::vector<PtxasEntry>> run_ptxas(const std::string& ptxas, const std::string& ptx, int sm) {
  char path[] = "/tmp/bitnet_ptxas_XXXXXX.ptx";
  const int fd = mkstemps(path, 4);
  if (fd < 0) return Error{std::string("run_ptxas: mkstemps: ") + std::strerror(errno)};
  close(fd);
  {
    std::ofstream file(path, std::ios::binary);
    file << ptx;
  }
  const std::string command =
      "'" + ptxas + "' -arch=sm_" + std::to_string(sm) + " -v -o /dev/null '" + std::string(path) + "' 2>&1";
  std::string output;
  int status = -1;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
    status = pclose(pipe);
  }
  std::remove(path);
  if (status != 0) return Error{"ptxas failed (" + command + "):\n" + output};
  return parse_ptxas_report(output);
}

}  // namespace bitnet::codegen_cuda
