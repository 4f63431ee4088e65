#pragma once
// Output safety under SIGINT / SIGTERM / SIGHUP: while write_npy_atomic holds a temporary file, a signal that ends
// the process first removes that file, so an interrupted command leaves neither a partial output nor litter.
// The target itself is only ever replaced by an atomic rename, so it is whole either way.
namespace tdconv::io {

// Installs the handlers (once; idempotent). The command calls it at start; library users may, too.
void remove_pending_output_on_signal();

namespace detail {
// Used by write_npy_atomic: the temporary file being written (nullptr: none). Async-signal-safe to read.
void set_pending_output(const char* path);
}  // namespace detail

}  // namespace tdconv::io
