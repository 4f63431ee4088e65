#include "io/npy.hpp"

#include "io/interrupt.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <filesystem>
#include <optional>
#include <random>
#include <string_view>
#include <system_error>
#include <utility>

namespace tdconv::io {
namespace {

// The reader hands out the file's bytes as they are and the writer stores memory as it is, both labelled
// little-endian, which is only right on a little-endian host.
static_assert(std::endian::native == std::endian::little, "tdconv's .npy I/O assumes a little-endian host");

constexpr unsigned char kMagic[] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
constexpr std::size_t kMagicSize = sizeof(kMagic);
constexpr std::size_t kVersionEnd = kMagicSize + 2;
// Magic, version and a 4-byte header length: the longest prefix any supported version has.
constexpr std::size_t kMaxPrefixSize = kVersionEnd + 4;
constexpr std::size_t kVersion1PrefixSize = kVersionEnd + 2;
constexpr std::size_t kDataAlignment = 64;
constexpr std::size_t kMaxDims = 32;

std::string errno_message(int err) { return std::system_category().message(err); }

// Text taken from a hostile header goes into error messages, so it is escaped and shortened first.
std::string printable(std::string_view text) {
  constexpr std::size_t kMaxShown = 40;
  std::string out;
  for (const char c : text.substr(0, kMaxShown)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f) {
      out += c;
    } else {
      constexpr char kHex[] = "0123456789abcdef";
      out += {'\\', 'x', kHex[byte >> 4], kHex[byte & 0xf]};
    }
  }
  if (text.size() > kMaxShown) out += "...";
  return out;
}

std::string in_quotes(std::string_view text) { return "'" + printable(text) + "'"; }

// Python's repr of a tuple of ints, which is also how the header spells the shape: (), (5,), (2, 3).
std::string format_shape(std::span<const std::int64_t> shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + (shape.size() == 1 ? ",)" : ")");
}

Error too_many_dims(const std::string& subject) {
  return Error(subject, "shape has more than " + std::to_string(kMaxDims) + " dimensions");
}

void validate_shape(std::span<const std::int64_t> shape, const std::string& subject) {
  if (shape.size() > kMaxDims) throw too_many_dims(subject);
  if (std::ranges::any_of(shape, [](std::int64_t dim) { return dim < 0; })) {
    throw Error(subject, "shape " + format_shape(shape) + " has a negative dimension");
  }
}

// Returns the data size in bytes of a validated shape. A zero dimension makes the array empty, but as in NumPy the
// other dimensions must still multiply without overflow, so whether a shape is accepted does not depend on the order
// of its dimensions.
std::uint64_t checked_byte_size(DType dtype, std::span<const std::int64_t> shape, const std::string& subject) {
  const auto too_large = [&](const char* quantity) {
    return Error(subject, "shape " + format_shape(shape) + " is too large: its " + quantity + " overflows int64");
  };
  std::int64_t nonzero_product = 1;
  bool empty = false;
  for (const std::int64_t dim : shape) {
    if (dim == 0) {
      empty = true;
    } else if (__builtin_mul_overflow(nonzero_product, dim, &nonzero_product)) {
      throw too_large("element count");
    }
  }
  std::int64_t bytes = 0;
  if (__builtin_mul_overflow(nonzero_product, static_cast<std::int64_t>(dtype_size(dtype)), &bytes)) {
    throw too_large("byte size");
  }
  return empty ? 0 : static_cast<std::uint64_t>(bytes);
}

// ---- Reading ----

// Where the header dict lies: after the magic string, the two version bytes and the little-endian header length,
// which takes 2 bytes in version 1.0 and 4 bytes from version 2.0 on.
struct Prefix {
  std::uint64_t header_offset = 0;
  std::uint64_t header_length = 0;
  std::uint64_t data_offset() const { return header_offset + header_length; }
};

void check_magic(std::span<const std::byte> bytes, const std::string& name) {
  if (bytes.empty()) throw Error(name, "empty file, not a .npy file");
  const std::size_t compared = std::min(bytes.size(), kMagicSize);
  for (std::size_t i = 0; i < compared; ++i) {
    if (std::to_integer<unsigned char>(bytes[i]) != kMagic[i]) {
      throw Error(name, "not a .npy file: magic string \\x93NUMPY missing");
    }
  }
  if (bytes.size() < kMagicSize) throw Error(name, "truncated: file ends inside the .npy magic string");
}

std::size_t header_length_field_size(int major, int minor, const std::string& name) {
  if (major == 1 && minor == 0) return 2;
  // 3.0 differs from 2.0 only in allowing a UTF-8 header; a valid header for our dtypes is plain ASCII either way.
  if ((major == 2 || major == 3) && minor == 0) return 4;
  throw Error(name, "unsupported .npy version " + std::to_string(major) + "." + std::to_string(minor) +
                        " (supported: 1.0, 2.0, 3.0)");
}

std::uint64_t read_little_endian(std::span<const std::byte> bytes) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) value |= std::to_integer<std::uint64_t>(bytes[i]) << (8 * i);
  return value;
}

// `bytes` is the start of the file: kMaxPrefixSize bytes, or the whole file if it is shorter.
Prefix parse_prefix(std::span<const std::byte> bytes, const std::string& name) {
  check_magic(bytes, name);
  if (bytes.size() < kVersionEnd) throw Error(name, "truncated: file ends inside the .npy version");
  const int major = std::to_integer<int>(bytes[kMagicSize]);
  const int minor = std::to_integer<int>(bytes[kMagicSize + 1]);
  const std::size_t length_size = header_length_field_size(major, minor, name);
  if (bytes.size() < kVersionEnd + length_size) throw Error(name, "truncated: file ends inside the header length");
  return {kVersionEnd + length_size, read_little_endian(bytes.subspan(kVersionEnd, length_size))};
}

// The header dict exactly as written, before its values are given meaning.
struct RawHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<std::int64_t> shape;
};

// A strict parser for the one Python dict literal a .npy header holds, e.g.
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// It accepts what Python's literal syntax allows for these three keys (either quote style, any key order, an optional
// trailing comma, whitespace between tokens) and nothing else. Every read is bounds-checked against the text.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& name) : text_(text), name_(name) {}

  RawHeader parse() {
    std::optional<std::string> descr;
    std::optional<bool> fortran_order;
    std::optional<std::vector<std::int64_t>> shape;
    expect('{', "'{'");
    while (!consume('}')) {
      const std::string key = parse_string("a quoted key or '}'");
      expect(':', "':' after the key");
      if (key == "descr") {
        parse_once(descr, key, [this] { return parse_descr(); });
      } else if (key == "fortran_order") {
        parse_once(fortran_order, key, [this] { return parse_bool(); });
      } else if (key == "shape") {
        parse_once(shape, key, [this] { return parse_shape(); });
      } else {
        throw Error(name_, "header has unknown key " + in_quotes(key));
      }
      if (!consume(',')) {
        expect('}', "',' or '}'");
        break;
      }
    }
    skip_whitespace();
    if (!at_end()) fail("only padding may follow the closing '}'");
    return {require(std::move(descr), "descr"), require(fortran_order, "fortran_order"),
            require(std::move(shape), "shape")};
  }

 private:
  template <class T, class ParseValue>
  void parse_once(std::optional<T>& slot, const std::string& key, ParseValue parse_value) {
    if (slot) throw Error(name_, "header has duplicate key " + in_quotes(key));
    slot = parse_value();
  }

  template <class T>
  T require(std::optional<T> slot, const char* key) const {
    if (!slot) throw Error(name_, std::string("header is missing key '") + key + "'");
    return std::move(*slot);
  }

  std::string parse_descr() {
    skip_whitespace();
    // A structured dtype's descr is a list of fields rather than a type string.
    if (!at_end() && text_[pos_] == '[') {
      throw Error(name_, "structured dtypes are not supported; tdconv reads float32 ('<f4') and float64 ('<f8')");
    }
    return parse_string("a quoted dtype string");
  }

  std::string parse_string(const char* what) {
    skip_whitespace();
    if (at_end() || (text_[pos_] != '\'' && text_[pos_] != '"')) fail_expected(what);
    const char quote = text_[pos_];
    const std::size_t start = pos_ + 1;
    const std::size_t end = text_.find_first_of(std::string{quote, '\\', '\n'}, start);
    if (end == std::string_view::npos || text_[end] == '\n') fail("unterminated string");
    if (text_[end] == '\\') {
      pos_ = end;
      fail("escape sequences in strings are not supported");
    }
    pos_ = end + 1;
    return std::string(text_.substr(start, end - start));
  }

  bool parse_bool() {
    skip_whitespace();
    const std::size_t start = pos_;
    while (!at_end() && is_identifier_char(text_[pos_])) ++pos_;
    const std::string_view word = text_.substr(start, pos_ - start);
    if (word == "True") return true;
    if (word == "False") return false;
    pos_ = start;
    fail_expected("True or False");
  }

  // (), (5,), (2, 3) or (2, 3,). Python reads (5) as the integer 5, so a single dimension needs its comma.
  std::vector<std::int64_t> parse_shape() {
    expect('(', "'(' starting the shape tuple");
    std::vector<std::int64_t> dims;
    if (consume(')')) return dims;
    while (true) {
      // Checked before each push so that a long hostile tuple cannot grow the vector without bound.
      if (dims.size() == kMaxDims) throw too_many_dims(name_);
      dims.push_back(parse_dimension());
      if (consume(')')) {
        if (dims.size() == 1) fail("a one-dimensional shape needs a trailing comma, as in (5,)");
        return dims;
      }
      expect(',', "',' or ')' in the shape tuple");
      if (consume(')')) return dims;
    }
  }

  // Negative values are returned as they are, so that validate_shape can report the whole shape.
  std::int64_t parse_dimension() {
    skip_whitespace();
    const bool negative = !at_end() && text_[pos_] == '-';
    if (negative) ++pos_;
    const std::size_t digits_start = pos_;
    std::int64_t magnitude = 0;
    while (!at_end() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      if (__builtin_mul_overflow(magnitude, 10, &magnitude) ||
          __builtin_add_overflow(magnitude, text_[pos_] - '0', &magnitude)) {
        fail("shape dimension does not fit in int64");
      }
      ++pos_;
    }
    if (pos_ == digits_start) fail_expected("an integer shape dimension");
    if (!at_end() && (is_identifier_char(text_[pos_]) || text_[pos_] == '.')) fail("shape dimensions must be integers");
    return negative ? -magnitude : magnitude;
  }

  static bool is_identifier_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  }

  bool at_end() const { return pos_ >= text_.size(); }

  void skip_whitespace() {
    while (!at_end() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool consume(char c) {
    skip_whitespace();
    if (at_end() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  void expect(char c, const char* what) {
    if (!consume(c)) fail_expected(what);
  }

  [[noreturn]] void fail_expected(const char* what) const {
    const std::string found = at_end() ? "the end of the header" : in_quotes(text_.substr(pos_, 1));
    fail(std::string("expected ") + what + ", found " + found);
  }

  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(name_, "malformed .npy header at byte " + std::to_string(pos_) + ": " + problem);
  }

  std::string_view text_;
  const std::string& name_;
  std::size_t pos_ = 0;
};

DType dtype_from_descr(const std::string& descr, const std::string& name) {
  if (descr == "<f4") return DType::f32;
  if (descr == "<f8") return DType::f64;
  if (descr.starts_with('>')) {
    throw Error(name, "dtype " + in_quotes(descr) +
                          " is big-endian; tdconv reads little-endian float32 ('<f4') and float64 ('<f8'), "
                          "e.g. save arr.astype('<f4')");
  }
  throw Error(name,
              "dtype " + in_quotes(descr) + " is not supported; tdconv reads float32 ('<f4') and float64 ('<f8')");
}

struct Header {
  DType dtype;
  std::vector<std::int64_t> shape;
};

Header interpret(RawHeader raw, const std::string& name) {
  const DType dtype = dtype_from_descr(raw.descr, name);
  if (raw.fortran_order) {
    throw Error(name, "fortran_order is True: Fortran-ordered arrays are not supported; "
                      "save a C-ordered copy (np.ascontiguousarray)");
  }
  validate_shape(raw.shape, name);
  return {dtype, std::move(raw.shape)};
}

void check_data_size(std::uint64_t promised, std::uint64_t available, const std::string& name) {
  const std::string sizes = "header promises " + std::to_string(promised) + " bytes of data but the file has " +
                            std::to_string(available);
  if (available < promised) throw Error(name, "truncated: " + sizes);
  if (available > promised) throw Error(name, "trailing bytes: " + sizes);
}

std::string_view as_text(const std::vector<std::byte>& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// Both readers go through decode(), which touches its input only through size() and read(offset, count), and asks
// for a range only after checking it against size(). That order is what keeps a lying header from causing an
// out-of-bounds read or a huge allocation.
template <class Source>
NpyArray decode(const Source& source, const std::string& name) {
  const std::uint64_t size = source.size();
  const Prefix prefix = parse_prefix(source.read(0, std::min<std::uint64_t>(size, kMaxPrefixSize)), name);
  if (prefix.data_offset() > size) {
    throw Error(name, "header length " + std::to_string(prefix.header_length) + " extends past the end of the file (" +
                          std::to_string(size) + " bytes)");
  }
  const std::vector<std::byte> header_bytes = source.read(prefix.header_offset, prefix.header_length);
  Header header = interpret(HeaderParser(as_text(header_bytes), name).parse(), name);
  const std::uint64_t data_bytes = checked_byte_size(header.dtype, header.shape, name);
  check_data_size(data_bytes, size - prefix.data_offset(), name);
  return {header.dtype, std::move(header.shape), source.read(prefix.data_offset(), data_bytes)};
}

class MemorySource {
 public:
  explicit MemorySource(std::span<const std::byte> bytes) : bytes_(bytes) {}
  std::uint64_t size() const { return bytes_.size(); }
  std::vector<std::byte> read(std::uint64_t offset, std::uint64_t count) const {
    const auto part = bytes_.subspan(offset, count);
    return {part.begin(), part.end()};
  }

 private:
  std::span<const std::byte> bytes_;
};

// Closes the descriptor it owns on every path out of a function.
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  // Hands the descriptor over so that the caller can close it and see close()'s error.
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

class FileSource {
 public:
  explicit FileSource(const std::string& path) : path_(path), fd_(open_for_reading(path)), size_(regular_size()) {}
  std::uint64_t size() const { return size_; }

  std::vector<std::byte> read(std::uint64_t offset, std::uint64_t count) const {
    std::vector<std::byte> out(count);
    std::uint64_t done = 0;
    while (done < count) {
      const ssize_t got = ::pread(fd_.get(), out.data() + done, count - done, static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) throw Error(path_, "read failed: " + errno_message(errno));
      if (got == 0) throw Error(path_, "file shrank while it was being read");
      done += static_cast<std::uint64_t>(got);
    }
    return out;
  }

 private:
  // O_NONBLOCK keeps open() from waiting for a writer when the path is a FIFO; regular_size() rejects it afterwards.
  // On regular files the flag has no effect.
  static int open_for_reading(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) throw Error(path, "cannot open: " + errno_message(errno));
    return fd;
  }

  std::uint64_t regular_size() const {
    struct stat info {};
    if (::fstat(fd_.get(), &info) != 0) throw Error(path_, "cannot stat: " + errno_message(errno));
    if (S_ISDIR(info.st_mode)) throw Error(path_, "is a directory, not a .npy file");
    if (!S_ISREG(info.st_mode)) throw Error(path_, "not a regular file");
    return static_cast<std::uint64_t>(info.st_size);
  }

  const std::string& path_;
  UniqueFd fd_;
  std::uint64_t size_;
};

// ---- Writing ----

std::string header_text(DType dtype, std::span<const std::int64_t> shape) {
  const char* descr = dtype == DType::f32 ? "<f4" : "<f8";
  std::string text = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " +
                     format_shape(shape) + ", }";
  // Padding with spaces up to the final '\n' makes the data start 64-byte aligned, as NumPy's own writer does.
  const std::size_t unpadded = kVersion1PrefixSize + text.size() + 1;
  text.append((kDataAlignment - unpadded % kDataAlignment) % kDataAlignment, ' ');
  text += '\n';
  return text;
}

void append(std::vector<std::byte>& out, const void* data, std::size_t count) {
  const auto* bytes = static_cast<const std::byte*>(data);
  out.insert(out.end(), bytes, bytes + count);
}

std::vector<std::byte> encode(DType dtype, std::span<const std::int64_t> shape, const void* data,
                              const std::string& subject) {
  validate_shape(shape, subject);
  const std::uint64_t data_bytes = checked_byte_size(dtype, shape, subject);
  if (data == nullptr && data_bytes > 0) {
    throw Error(subject, "data is null but shape " + format_shape(shape) + " has elements");
  }
  // At most kMaxDims dimensions of at most 19 digits keep the header far below the 65535 bytes that version 1.0's
  // 2-byte length field can describe.
  const std::string header = header_text(dtype, shape);
  const unsigned char prefix[] = {kMagic[0], kMagic[1], kMagic[2], kMagic[3], kMagic[4], kMagic[5], 1, 0,
                                  static_cast<unsigned char>(header.size() & 0xff),
                                  static_cast<unsigned char>(header.size() >> 8)};
  std::vector<std::byte> out;
  out.reserve(sizeof(prefix) + header.size() + data_bytes);
  append(out, prefix, sizeof(prefix));
  append(out, header.data(), header.size());
  append(out, data, data_bytes);
  return out;
}

// A new file next to the target whose content replaces the target only once commit() succeeds. Until then the
// destructor removes it, so no failure leaves it behind and the target is never touched.
class PendingFile {
 public:
  explicit PendingFile(const std::string& target) : target_(target), fd_(create_exclusive()) {}
  ~PendingFile() {
    if (!committed_) ::unlink(path_.c_str());
    detail::set_pending_output(nullptr);
  }
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;

  void write_all(std::span<const std::byte> bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t wrote = ::write(fd_.get(), bytes.data() + done, bytes.size() - done);
      if (wrote < 0 && errno == EINTR) continue;
      if (wrote < 0) fail("cannot write");
      done += static_cast<std::size_t>(wrote);
    }
  }

  // The data is synced before the rename so that a crash cannot leave the target name pointing at an incomplete file.
  void commit() {
    if (::fsync(fd_.get()) != 0) fail("cannot sync");
    if (::close(fd_.release()) != 0) fail("cannot close");
    if (::rename(path_.c_str(), target_.c_str()) != 0) fail("cannot rename over the target");
    committed_ = true;
  }

 private:
  // mkstemp would create the file with mode 0600; O_CREAT | O_EXCL with mode 0666 instead lets the umask decide, so
  // the result gets the same permissions as any other file the user creates.
  int create_exclusive() {
    constexpr int kAttempts = 100;
    std::random_device entropy;
    int err = 0;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
      path_ = target_ + ".tmp." + random_suffix(entropy);
      // Registered for the signal handler before the file exists: registered only after open(), a signal arriving
      // in between left the file behind (the interrupt test caught it under AddressSanitizer, where that window is
      // wide). A signal before open() unlinks a name that nobody else holds (12 random characters).
      detail::set_pending_output(path_.c_str());
      const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd >= 0) return fd;
      err = errno;
      detail::set_pending_output(nullptr);
      if (err != EEXIST) break;
    }
    throw Error(target_, "cannot create temporary file " + in_quotes(path_) + ": " + errno_message(err));
  }

  static std::string random_suffix(std::random_device& entropy) {
    constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::uniform_int_distribution<std::size_t> pick(0, sizeof(kAlphabet) - 2);
    std::string suffix(12, ' ');
    for (char& c : suffix) c = kAlphabet[pick(entropy)];
    return suffix;
  }

  [[noreturn]] void fail(const char* action) const {
    const int err = errno;
    throw Error(target_, std::string(action) + " temporary file " + in_quotes(path_) + ": " + errno_message(err));
  }

  const std::string& target_;
  std::string path_;
  UniqueFd fd_;
  bool committed_ = false;
};

// Makes the rename itself survive a power loss. It runs after the target has been replaced, so a failure here cannot
// be reported as "the target was left unchanged"; durability of the directory entry is best effort.
void sync_directory_of(const std::string& path) {
  std::filesystem::path directory = std::filesystem::path(path).parent_path();
  if (directory.empty()) directory = ".";
  const UniqueFd fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() >= 0) ::fsync(fd.get());
}

}  // namespace

std::int64_t NpyArray::element_count() const {
  std::int64_t count = 1;
  for (const std::int64_t dim : shape) count *= dim;
  return count;
}

NpyArray parse_npy(std::span<const std::byte> bytes, const std::string& name) {
  return decode(MemorySource(bytes), name);
}

NpyArray read_npy(const std::string& path) { return decode(FileSource(path), path); }

std::vector<std::byte> encode_npy(DType dtype, std::span<const std::int64_t> shape, const void* data) {
  return encode(dtype, shape, data, "encode_npy");
}

void write_npy_atomic(const std::string& path, DType dtype, std::span<const std::int64_t> shape, const void* data) {
  const std::vector<std::byte> bytes = encode(dtype, shape, data, path);
  PendingFile pending(path);
  pending.write_all(bytes);
  pending.commit();
  sync_directory_of(path);
}

}  // namespace tdconv::io
