#include "child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace bench {
namespace {

std::runtime_error system_error(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

void close_if_open(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

ChildProcess::ChildProcess(const std::vector<std::string>& argv) {
  if (argv.empty()) throw std::invalid_argument("ChildProcess: no program");
  // A write to a child that has died must come back as an error (EPIPE), not end the benchmark.
  signal(SIGPIPE, SIG_IGN);
  int in[2];   // its stdin: in[0] its end, in[1] ours
  int out[2];  // its stdout: out[0] ours, out[1] its end
  if (pipe2(in, O_CLOEXEC) != 0) throw system_error("pipe");
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    throw system_error("pipe");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);  // dup2 clears close-on-exec on the copy
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const int rc = posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    errno = rc;
    throw system_error("cannot start " + argv[0]);
  }
  to_child_ = in[1];
  from_child_ = fdopen(out[0], "r");
  if (from_child_ == nullptr) {
    close(out[0]);
    close_if_open(to_child_);
    waitpid(pid_, nullptr, 0);
    throw system_error("fdopen");
  }
  alive_ = true;
}

ChildProcess::~ChildProcess() {
  close_if_open(to_child_);
  if (from_child_ != nullptr) std::fclose(from_child_);
  if (pid_ > 0) waitpid(pid_, nullptr, 0);
}

std::string ChildProcess::ask(const std::string& line) {
  if (!alive_) throw std::runtime_error("the helper process has ended");
  const std::string message = line + "\n";
  for (std::size_t sent = 0; sent < message.size();) {
    const ssize_t n = write(to_child_, message.data() + sent, message.size() - sent);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      alive_ = false;
      throw system_error("writing to the helper process");
    }
    sent += static_cast<std::size_t>(n);
  }
  return read_line();
}

std::string ChildProcess::read_line() {
  if (!alive_) throw std::runtime_error("the helper process has ended");
  std::string answer;
  for (int c = std::fgetc(from_child_); c != '\n'; c = std::fgetc(from_child_)) {
    if (c == EOF) {
      alive_ = false;
      throw std::runtime_error("the helper process ended without answering");
    }
    answer.push_back(static_cast<char>(c));
  }
  return answer;
}

}  // namespace bench
