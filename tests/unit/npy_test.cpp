// Tests for the .npy reader and writer: round trips, the header dialects NumPy writes, and hostile files that must be
// rejected with a tdconv::Error naming the broken rule rather than crashing or allocating what the header claims.
#include "io/npy.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace tdconv::io {
namespace {

namespace fs = std::filesystem;

std::vector<std::byte> to_bytes(std::string_view text) {
  const auto* first = reinterpret_cast<const std::byte*>(text.data());
  return {first, first + text.size()};
}

// A raw .npy file around `header` (the dict text, used as it is) followed by `data_bytes` zero bytes. Building files
// by hand lets the tests state exactly which field is wrong.
std::string npy_file(std::string_view header, std::size_t data_bytes = 0, int major = 1, int minor = 0) {
  std::string file = "\x93NUMPY";
  file += static_cast<char>(major);
  file += static_cast<char>(minor);
  const int length_bytes = major == 1 ? 2 : 4;
  for (int i = 0; i < length_bytes; ++i) file += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  file += header;
  file.append(data_bytes, '\0');
  return file;
}

std::string header_for(std::string_view descr, std::string_view shape, std::string_view fortran = "False") {
  return "{'descr': '" + std::string(descr) + "', 'fortran_order': " + std::string(fortran) +
         ", 'shape': " + std::string(shape) + ", }\n";
}

template <class Action>
std::string error_message(Action action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return "(no tdconv::Error thrown)";
}

testing::AssertionResult mentions(const std::string& message, std::string_view needle) {
  if (message.find(needle) != std::string::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "message \"" << message << "\" does not mention \"" << needle << "\"";
}

class NpyTest : public testing::Test {
 protected:
  void SetUp() override {
    std::random_device entropy;
    dir_ = fs::temp_directory_path() /
           ("tdconv_npy_test_" + std::to_string(::getpid()) + "_" + std::to_string(entropy()));
    fs::create_directory(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& file_name) const { return (dir_ / file_name).string(); }

  std::string write_file(const std::string& file_name, std::string_view content) const {
    const std::string file_path = path(file_name);
    std::ofstream(file_path, std::ios::binary).write(content.data(), static_cast<std::streamsize>(content.size()));
    return file_path;
  }

  std::string read_file(const std::string& file_path) const {
    std::ifstream in(file_path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  std::vector<std::string> directory_entries() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) names.push_back(entry.path().filename().string());
    return names;
  }

  // Both readers must reject `file` with an error that names the file and mentions `needle`.
  void expect_rejected(const std::string& file, std::string_view needle) const {
    const std::string in_memory = error_message([&] { parse_npy(to_bytes(file), "x.npy"); });
    EXPECT_TRUE(mentions(in_memory, "x.npy: "));
    EXPECT_TRUE(mentions(in_memory, needle)) << "parse_npy";
    const std::string file_path = write_file("hostile.npy", file);
    const std::string from_disk = error_message([&] { read_npy(file_path); });
    EXPECT_TRUE(mentions(from_disk, file_path + ": "));
    EXPECT_TRUE(mentions(from_disk, needle)) << "read_npy";
  }

  fs::path dir_;
};

template <class T>
std::vector<T> iota_values(std::int64_t count) {
  std::vector<T> values(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<T>(i) * static_cast<T>(0.5) - 3;
  return values;
}

template <class T>
void expect_array(const NpyArray& array, DType dtype, const std::vector<std::int64_t>& shape,
                  const std::vector<T>& values) {
  EXPECT_EQ(array.dtype, dtype);
  EXPECT_EQ(array.shape, shape);
  ASSERT_EQ(array.element_count(), static_cast<std::int64_t>(values.size()));
  ASSERT_EQ(array.data.size(), values.size() * sizeof(T));
  EXPECT_EQ(std::memcmp(array.as<T>(), values.data(), array.data.size()), 0);
}

template <class T>
void expect_round_trips(DType dtype, const std::string& file_path) {
  const std::vector<std::vector<std::int64_t>> shapes = {{}, {5}, {2, 3, 4}};
  for (const auto& shape : shapes) {
    SCOPED_TRACE("shape of rank " + std::to_string(shape.size()));
    std::int64_t count = 1;
    for (const std::int64_t dim : shape) count *= dim;
    const std::vector<T> values = iota_values<T>(count);
    expect_array(parse_npy(encode_npy(dtype, shape, values.data()), "mem"), dtype, shape, values);
    write_npy_atomic(file_path, dtype, shape, values.data());
    expect_array(read_npy(file_path), dtype, shape, values);
  }
}

TEST_F(NpyTest, RoundTripsFloat32) { expect_round_trips<float>(DType::f32, path("a.npy")); }

TEST_F(NpyTest, RoundTripsFloat64) { expect_round_trips<double>(DType::f64, path("a.npy")); }

TEST_F(NpyTest, EncodedHeaderIsVersion1AlignedTo64AndEndsWithNewline) {
  const std::vector<std::vector<std::int64_t>> shapes = {
      {}, {5}, {2, 3}, std::vector<std::int64_t>(32, 1), {std::int64_t{1} << 40, 0}};
  const std::vector<double> zeros(6);  // enough elements for every shape above
  for (const auto& shape : shapes) {
    const std::vector<std::byte> file = encode_npy(DType::f64, shape, zeros.data());
    ASSERT_GE(file.size(), 10u);
    EXPECT_EQ(std::to_integer<int>(file[6]), 1);
    EXPECT_EQ(std::to_integer<int>(file[7]), 0);
    const std::size_t header_length = std::to_integer<std::size_t>(file[8]) |
                                      std::to_integer<std::size_t>(file[9]) << 8;
    const std::size_t data_offset = 10 + header_length;
    EXPECT_EQ(data_offset % 64, 0u);
    ASSERT_LE(data_offset, file.size());
    EXPECT_EQ(std::to_integer<char>(file[data_offset - 1]), '\n');
    const std::string header(reinterpret_cast<const char*>(file.data()) + 10, header_length);
    EXPECT_TRUE(header.starts_with("{'descr': '<f8', 'fortran_order': False, 'shape': (")) << header;
  }
}

TEST_F(NpyTest, ShapeWithZeroDimensionIsValid) {
  const std::vector<std::int64_t> shape = {0, 3};
  const NpyArray array = parse_npy(encode_npy(DType::f32, shape, nullptr), "mem");
  EXPECT_EQ(array.shape, shape);
  EXPECT_EQ(array.element_count(), 0);
  EXPECT_TRUE(array.data.empty());
}

TEST_F(NpyTest, ReadsVersion2Header) {
  const std::vector<double> values = {1.5, -2.0, 3.25};
  std::string file = npy_file(header_for("<f8", "(3,)"), 0, 2, 0);
  file.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(double));
  expect_array(read_npy(write_file("v2.npy", file)), DType::f64, {3}, values);
}

TEST_F(NpyTest, ReadsVersion3Header) {
  const NpyArray array = parse_npy(to_bytes(npy_file(header_for("<f4", "(2, 2)"), 16, 3, 0)), "v3.npy");
  EXPECT_EQ(array.shape, (std::vector<std::int64_t>{2, 2}));
}

TEST_F(NpyTest, AcceptsEveryHeaderSpellingPythonAllows) {
  const std::string headers[] = {
      "{\"shape\": (2, 3), \"descr\": \"<f4\", \"fortran_order\": False}",
      "{ 'fortran_order' :False,'shape':( 2 ,3 , ),'descr':'<f4' }   \n",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + std::string(40, ' ') + "\n",
  };
  for (const std::string& header : headers) {
    SCOPED_TRACE(header);
    const NpyArray array = parse_npy(to_bytes(npy_file(header, 24)), "x.npy");
    EXPECT_EQ(array.dtype, DType::f32);
    EXPECT_EQ(array.shape, (std::vector<std::int64_t>{2, 3}));
  }
}

TEST_F(NpyTest, RejectsEmptyFile) { expect_rejected("", "empty"); }

TEST_F(NpyTest, RejectsWrongMagic) { expect_rejected("PK\x03\x04 this is a zip", "magic string \\x93NUMPY missing"); }

TEST_F(NpyTest, RejectsTruncatedMagic) { expect_rejected("\x93NUM", "magic"); }

TEST_F(NpyTest, RejectsFileEndingInsideHeaderLength) {
  expect_rejected(std::string("\x93NUMPY\x01\x00\x10", 9), "truncated");
}

TEST_F(NpyTest, RejectsUnsupportedVersion) {
  expect_rejected(npy_file(header_for("<f4", "()"), 4, 9, 9), "unsupported .npy version 9.9");
}

TEST_F(NpyTest, RejectsHeaderLengthPastEndOfFile) {
  std::string file = npy_file(header_for("<f4", "()"), 4);
  file[8] = '\xff';
  file[9] = '\x7f';
  expect_rejected(file, "past the end of the file");
}

TEST_F(NpyTest, RejectsHeaderWithoutClosingBrace) {
  expect_rejected(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), \n", 8), "header");
}

TEST_F(NpyTest, RejectsGarbageHeader) { expect_rejected(npy_file("hello, world\n", 4), "malformed .npy header"); }

TEST_F(NpyTest, RejectsTextAfterClosingBrace) {
  expect_rejected(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (), } x\n", 4), "closing '}'");
}

TEST_F(NpyTest, RejectsMissingShape) {
  expect_rejected(npy_file("{'descr': '<f4', 'fortran_order': False}\n"), "missing key 'shape'");
}

TEST_F(NpyTest, RejectsDuplicateKey) {
  expect_rejected(npy_file("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}\n", 4),
                  "duplicate key 'descr'");
}

TEST_F(NpyTest, RejectsUnknownKey) {
  expect_rejected(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}\n", 4), "unknown key 'x'");
}

TEST_F(NpyTest, RejectsNegativeDimension) { expect_rejected(npy_file(header_for("<f4", "(2, -3)")), "negative"); }

TEST_F(NpyTest, RejectsNonIntegerDimension) { expect_rejected(npy_file(header_for("<f4", "(2.5,)")), "integers"); }

TEST_F(NpyTest, RejectsParenthesizedIntegerAsShape) {
  expect_rejected(npy_file(header_for("<f4", "(5)"), 20), "trailing comma");
}

TEST_F(NpyTest, RejectsMoreThan32Dimensions) {
  std::string shape = "(";
  for (int i = 0; i < 33; ++i) shape += "1, ";
  expect_rejected(npy_file(header_for("<f4", shape + ")"), 4), "more than 32 dimensions");
}

TEST_F(NpyTest, RejectsDimensionBeyondInt64) {
  expect_rejected(npy_file(header_for("<f4", "(99999999999999999999,)")), "does not fit in int64");
}

TEST_F(NpyTest, RejectsShapeWhoseSizeOverflows) {
  expect_rejected(npy_file(header_for("<f4", "(1000000000000, 1000000000000)")), "element count overflows int64");
  expect_rejected(npy_file(header_for("<f4", "(4294967296, 4294967296)")), "element count overflows int64");
  expect_rejected(npy_file(header_for("<f8", "(2305843009213693952,)")), "byte size overflows int64");
  // A zero dimension empties the array but does not excuse the others from overflowing, in any order.
  expect_rejected(npy_file(header_for("<f4", "(0, 1000000000000, 1000000000000)")), "overflows");
  expect_rejected(npy_file(header_for("<f4", "(1000000000000, 1000000000000, 0)")), "overflows");
}

// 4 TB claimed by a file of a few bytes: the size check must come before any allocation, or this test would fail
// with std::bad_alloc (or be killed) instead of a tdconv::Error.
TEST_F(NpyTest, RejectsHugeClaimedSizeWithoutAllocating) {
  expect_rejected(npy_file(header_for("<f4", "(1000000, 1000000)"), 16),
                  "truncated: header promises 4000000000000 bytes of data but the file has 16");
}

TEST_F(NpyTest, RejectsUnsupportedDtype) {
  expect_rejected(npy_file(header_for("<i4", "(2,)"), 8),
                  "dtype '<i4' is not supported; tdconv reads float32 ('<f4') and float64 ('<f8')");
  expect_rejected(npy_file(header_for("<f2", "(2,)"), 4), "'<f2' is not supported");
  expect_rejected(npy_file(header_for("O", "(2,)"), 16), "'O' is not supported");
}

TEST_F(NpyTest, RejectsBigEndian) { expect_rejected(npy_file(header_for(">f4", "(2,)"), 8), "big-endian"); }

TEST_F(NpyTest, RejectsStructuredDtype) {
  expect_rejected(npy_file("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }\n", 8), "structured");
}

TEST_F(NpyTest, RejectsFortranOrder) {
  expect_rejected(npy_file(header_for("<f4", "(2, 3)", "True"), 24), "Fortran");
}

TEST_F(NpyTest, RejectsTruncatedData) {
  expect_rejected(npy_file(header_for("<f4", "(2, 3)"), 23),
                  "truncated: header promises 24 bytes of data but the file has 23");
}

TEST_F(NpyTest, RejectsTrailingData) {
  expect_rejected(npy_file(header_for("<f4", "(2, 3)"), 25), "trailing bytes");
}

// Every proper prefix of a valid file is a truncated file, and none may be mistaken for a valid one.
TEST_F(NpyTest, RejectsEveryTruncationOfAValidFile) {
  const std::vector<float> values = iota_values<float>(6);
  const std::vector<std::int64_t> shape = {2, 3};
  const std::vector<std::byte> file = encode_npy(DType::f32, shape, values.data());
  for (std::size_t length = 0; length < file.size(); ++length) {
    EXPECT_THROW(parse_npy(std::span(file).first(length), "x.npy"), Error) << "length " << length;
  }
}

// Corrupting any header byte must give either a valid array or a tdconv::Error; the sanitizer build checks that no
// corruption makes the parser read out of bounds.
TEST_F(NpyTest, SurvivesCorruptionOfEveryHeaderByte) {
  const std::vector<std::int64_t> shape = {2, 3};
  const std::vector<std::byte> valid = encode_npy(DType::f32, shape, iota_values<float>(6).data());
  const unsigned char replacements[] = {0x00, '\n', ' ', '\'', '"', '(', ')', ',', ':', '{', '}', '-', '9', 0x80, 0xff};
  for (std::size_t position = 0; position + 24 < valid.size(); ++position) {
    for (const unsigned char replacement : replacements) {
      std::vector<std::byte> file = valid;
      file[position] = std::byte{replacement};
      try {
        const NpyArray array = parse_npy(file, "x.npy");
        EXPECT_EQ(array.data.size(), static_cast<std::size_t>(array.element_count()) * dtype_size(array.dtype));
      } catch (const Error&) {
      }
    }
  }
}

TEST_F(NpyTest, ReadRejectsMissingFile) {
  EXPECT_TRUE(mentions(error_message([&] { read_npy(path("absent.npy")); }), "cannot open: No such file"));
}

TEST_F(NpyTest, ReadRejectsDirectory) {
  EXPECT_TRUE(mentions(error_message([&] { read_npy(dir_.string()); }), "directory"));
}

TEST_F(NpyTest, WriteReplacesExistingFileAndLeavesNoTemporaryFiles) {
  const std::string target = write_file("out.npy", "old content");
  const std::vector<double> values = {1, 2, 3};
  const std::vector<std::int64_t> shape = {3};
  write_npy_atomic(target, DType::f64, shape, values.data());
  expect_array(read_npy(target), DType::f64, shape, values);
  EXPECT_EQ(directory_entries(), std::vector<std::string>{"out.npy"});
}

TEST_F(NpyTest, WriteIntoMissingDirectoryThrowsAndCreatesNothing) {
  const std::string target = path("no_such_dir/out.npy");
  const std::vector<std::int64_t> shape = {1};
  const float value = 1;
  const std::string message = error_message([&] { write_npy_atomic(target, DType::f32, shape, &value); });
  EXPECT_TRUE(mentions(message, target + ": cannot create temporary file"));
  EXPECT_TRUE(directory_entries().empty());
}

TEST_F(NpyTest, FailedWriteLeavesExistingFileUnchanged) {
  const std::string target = write_file("out.npy", "old content");
  const std::vector<std::int64_t> negative_shape = {-1};
  EXPECT_TRUE(mentions(error_message([&] { write_npy_atomic(target, DType::f32, negative_shape, nullptr); }),
                       "negative"));
  const std::vector<std::int64_t> shape = {2};
  EXPECT_TRUE(mentions(error_message([&] { write_npy_atomic(target, DType::f32, shape, nullptr); }), "null"));
  EXPECT_EQ(read_file(target), "old content");
  EXPECT_EQ(directory_entries(), std::vector<std::string>{"out.npy"});
}

// Here the temporary file is fully written before the rename fails, so this checks the cleanup after a late failure.
TEST_F(NpyTest, FailedRenameRemovesTemporaryFile) {
  fs::create_directory(dir_ / "taken");
  write_file("taken/keep.txt", "kept");
  const std::vector<std::int64_t> shape = {1};
  const float value = 1;
  EXPECT_TRUE(mentions(error_message([&] { write_npy_atomic(path("taken"), DType::f32, shape, &value); }),
                       "cannot rename"));
  EXPECT_EQ(directory_entries(), std::vector<std::string>{"taken"});
  EXPECT_EQ(read_file(path("taken/keep.txt")), "kept");
}

}  // namespace
}  // namespace tdconv::io
