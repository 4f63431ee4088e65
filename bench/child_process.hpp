#pragma once
// A helper process spoken to in lines: one request line to its stdin, one answer line back from its stdout. Its
// stderr is ours. The PyTorch peer runs in one (torch_peer.py --serve), so that tdconv-bench can time it in turns
// with the implementations in this process.
#include <cstdio>
#include <string>
#include <vector>

namespace bench {

class ChildProcess {
 public:
  // Starts argv[0] (looked up on PATH) with the arguments argv[1...]. Throws when it cannot be started.
  explicit ChildProcess(const std::vector<std::string>& argv);
  ~ChildProcess();  // closes its stdin (the sign to finish) and waits for it
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Sends `line` (no newline in it) and returns the answer line without its newline. Throws when the process has
  // ended or closed its stdout; from then on alive() is false.
  std::string ask(const std::string& line);
  std::string read_line();  // the next line it writes, without asking (throws like ask)
  bool alive() const { return alive_; }
  int pid() const { return pid_; }

 private:
  int pid_ = -1;
  int to_child_ = -1;              // the write end of its stdin
  std::FILE* from_child_ = nullptr;  // the read end of its stdout
  bool alive_ = false;
};

}  // namespace bench
