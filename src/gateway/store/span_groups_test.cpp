// The group row of a job's spans (span_groups.hpp): what is written reads back the same, a large
// group is split, a damaged row is an error that names it.
#include "gateway/store/span_groups.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

namespace asya::gateway {
namespace {

SpanRecord record(std::string span_id, std::int64_t start, std::string document) {
  return SpanRecord{"job-1", "0af7651916cd43dd8448eb211c80319c", std::move(span_id), start,
                    std::move(document)};
}

std::vector<const SpanRecord*> pointers(const std::vector<SpanRecord>& spans) {
  std::vector<const SpanRecord*> out;
  for (const auto& span : spans) out.push_back(&span);
  return out;
}

TEST(SpanGroups, EveryDocumentReadsBackByteForByteWhateverItHolds) {
  // Documents that hold what the row's own syntax uses: brackets, commas, newlines, spaces, a
  // quote, a NUL, non-ASCII, and an empty one.
  std::vector<SpanRecord> spans{
      record("00000000000000a1", 10, R"({"name":"a],[b","x":"\n 1 2 3\n"})"),
      record("00000000000000b2", -5, std::string("{\"nul\":\"\0\",\"\xc3\xa9\":1}", 21)),
      record("00000000000000c3", 0, ""),
      record("00000000000000d4", 9'000'000'000'000'000'000, "[]"),
  };
  auto rows = encode_span_groups(pointers(spans));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].first_span, "0af7651916cd43dd8448eb211c80319c 00000000000000a1");
  EXPECT_EQ(rows[0].documents.front(), '[');
  EXPECT_EQ(rows[0].documents.back(), ']');

  std::vector<SpanRecord> back;
  Status read = decode_span_group("job-1", rows[0].span_index, rows[0].documents, back);
  ASSERT_TRUE(read.ok()) << read.message();
  ASSERT_EQ(back.size(), spans.size());
  for (std::size_t i = 0; i < spans.size(); ++i) {
    EXPECT_EQ(back[i].job_id, "job-1");
    EXPECT_EQ(back[i].trace_id, spans[i].trace_id);
    EXPECT_EQ(back[i].span_id, spans[i].span_id);
    EXPECT_EQ(back[i].start_unix_nano, spans[i].start_unix_nano);
    EXPECT_EQ(back[i].document, spans[i].document) << i;
  }
  std::vector<std::string> keys;
  ASSERT_TRUE(span_keys_of_group("job-1", rows[0].span_index, keys).ok());
  EXPECT_EQ(keys.size(), 4u);
  EXPECT_EQ(keys[1], "0af7651916cd43dd8448eb211c80319c 00000000000000b2");
}

TEST(SpanGroups, ALargeGroupIsSplitAndASpanLargerThanARowHasOneOfItsOwn) {
  std::vector<SpanRecord> spans;
  const std::string kilobyte(1000, 'x');
  for (int i = 0; i < 2500; ++i) {
    char id[17];
    std::snprintf(id, sizeof id, "%016x", i + 1);
    spans.push_back(record(id, i, "\"" + kilobyte + "\""));
  }
  spans.push_back(record("00000000000fffff", 1, std::string(kMaxSpanGroupBytes + 10, 'y')));
  spans.push_back(record("00000000000ffffe", 2, "{}"));
  auto rows = encode_span_groups(pointers(spans));
  ASSERT_GE(rows.size(), 4u);
  std::vector<SpanRecord> back;
  for (const auto& row : rows) {
    EXPECT_TRUE(row.documents.size() <= kMaxSpanGroupBytes + 2 ||
                row.span_index.find('\n') == row.span_index.size() - 1)
        << "a row above the limit holds one span";
    ASSERT_TRUE(decode_span_group("job-1", row.span_index, row.documents, back).ok());
    EXPECT_EQ(
        row.first_span.substr(33),
        back[back.size() - std::count(row.span_index.begin(), row.span_index.end(), '\n')].span_id);
  }
  ASSERT_EQ(back.size(), spans.size());
  for (std::size_t i = 0; i < spans.size(); ++i) {
    ASSERT_EQ(back[i].span_id, spans[i].span_id);
    ASSERT_EQ(back[i].document, spans[i].document);
  }
}

TEST(SpanGroups, ADamagedRowIsAnErrorNamingItsJobAndAddsNothing) {
  std::vector<SpanRecord> spans{record("00000000000000a1", 1, "{\"a\":1}"),
                                record("00000000000000b2", 2, "{\"b\":2}")};
  auto row = encode_span_groups(pointers(spans)).at(0);
  struct Case {
    std::string index, documents;
  } cases[] = {
      {row.span_index, row.documents.substr(0, row.documents.size() - 1)},   // cut short
      {row.span_index, row.documents + "x"},                                 // too long
      {row.span_index, "{" + row.documents.substr(1)},                       // not an array
      {row.span_index.substr(0, row.span_index.size() - 1), row.documents},  // last line unended
      {"0af7 00a1 one 7\n", row.documents},                                  // not a number
      {"", "[]"},                                                            // no span
  };
  for (const auto& c : cases) {
    std::vector<SpanRecord> out{record("00000000000000ff", 0, "kept")};
    Status read = decode_span_group("job-1", c.index, c.documents, out);
    ASSERT_FALSE(read.ok()) << c.index << " / " << c.documents;
    EXPECT_NE(read.message().find("span group of job \"job-1\""), std::string::npos)
        << read.message();
    EXPECT_NE(read.message().find("is damaged"), std::string::npos) << read.message();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].document, "kept");
  }
  std::vector<std::string> keys;
  EXPECT_FALSE(span_keys_of_group("job-1", "no line end", keys).ok());
}

TEST(SpanGroups, IdsARowCannotHoldAreRefusedWithTheSpanNamed) {
  EXPECT_TRUE(check_span_ids(record("00000000000000a1", 1, "{}")).ok());
  for (const char* bad : {"", "00000000 000000a1", "00000000000000a1\n", "\t"}) {
    Status checked = check_span_ids(record(bad, 1, "{}"));
    ASSERT_FALSE(checked.ok()) << bad;
    EXPECT_NE(checked.message().find("job \"job-1\""), std::string::npos) << checked.message();
  }
  SpanRecord bad_trace = record("00000000000000a1", 1, "{}");
  bad_trace.trace_id = "a b";
  EXPECT_FALSE(check_span_ids(bad_trace).ok());
}

}  // namespace
}  // namespace asya::gateway
