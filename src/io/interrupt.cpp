#include "io/interrupt.hpp"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>

namespace tdconv::io {
namespace {

constexpr std::size_t kMaxPath = 4096;
// The handler may only touch async-signal-safe state: a fixed buffer and a lock-free flag.
char g_pending_path[kMaxPath];
std::atomic<bool> g_pending{false};
std::atomic<bool> g_installed{false};

extern "C" void remove_pending_then_die(int signal_number) {
  if (g_pending.load()) ::unlink(g_pending_path);
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

}  // namespace

void remove_pending_output_on_signal() {
  if (g_installed.exchange(true)) return;
  for (int s : {SIGINT, SIGTERM, SIGHUP}) std::signal(s, remove_pending_then_die);
}

namespace detail {

void set_pending_output(const char* path) {
  if (path == nullptr || std::strlen(path) >= kMaxPath) {
    g_pending.store(false);
    return;
  }
  g_pending.store(false);  // never expose a half-copied path to the handler
  std::memcpy(g_pending_path, path, std::strlen(path) + 1);
  g_pending.store(true);
}

}  // namespace detail
}  // namespace tdconv::io
