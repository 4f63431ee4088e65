#pragma once
// A private scratch directory for a fuzz target: under /dev/shm when it is writable (tmpfs: files rewritten for every
// input cost next to nothing), else /tmp. Its name carries the process id, so that a later run can remove the
// directories of runs that crashed (libFuzzer leaves through _Exit then, skipping atexit handlers).
#include <dirent.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace tdconv_fuzz {

inline void remove_tree(const std::string& dir) {
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") ::unlink((dir + "/" + name).c_str());
    }
    ::closedir(d);
  }
  ::rmdir(dir.c_str());
}

// Creates BASE/NAME.PID.XXXXXX after removing any BASE/NAME.PID.* whose process is gone.
inline std::string make_scratch_dir(const std::string& name) {
  const std::string base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  const std::string prefix = name + ".";
  if (DIR* d = ::opendir(base.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string entry = e->d_name;
      if (entry.rfind(prefix, 0) != 0) continue;
      const long pid = std::strtol(entry.c_str() + prefix.size(), nullptr, 10);
      if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) remove_tree(base + "/" + entry);
    }
    ::closedir(d);
  }
  std::string dir = base + "/" + prefix + std::to_string(::getpid()) + ".XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) {
    std::fprintf(stderr, "%s: cannot create a scratch directory in %s\n", name.c_str(), base.c_str());
    std::abort();
  }
  return dir;
}

}  // namespace tdconv_fuzz
