#include "common/json_text.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <limits>

namespace asya {
namespace {

TEST(FormatDouble, PrintsTheShortestTextThatReadsBack) {
  EXPECT_EQ(format_double(8.1), "8.1");
  EXPECT_EQ(format_double(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(format_double(1e30), "1e+30");
  EXPECT_EQ(format_double(-2.5e-7), "-2.5e-07");
  for (double d : {8.1, 0.1 + 0.2, 1e30, 123456.789, 5e-324, 1.7976931348623157e308}) {
    EXPECT_EQ(boost::json::parse(format_double(d)).as_double(), d) << format_double(d);
  }
}

TEST(FormatDouble, KeepsIntegralValuesDoubles) {
  EXPECT_EQ(format_double(0.0), "0.0");
  EXPECT_EQ(format_double(3.0), "3.0");
  EXPECT_EQ(format_double(-0.0), "-0.0");
  EXPECT_TRUE(boost::json::parse(format_double(3.0)).is_double());
}

TEST(FormatDouble, NotFiniteValuesAreWhatBoostJsonWrites) {
  EXPECT_EQ(format_double(std::numeric_limits<double>::quiet_NaN()), "null");
  EXPECT_EQ(format_double(std::numeric_limits<double>::infinity()), "1e99999");
  EXPECT_EQ(format_double(-std::numeric_limits<double>::infinity()), "-1e99999");
}

TEST(ToJsonText, MatchesBoostSerializeExceptForDoubles) {
  const char* text = R"({"s":"a\"b\\c\n\u0001é","i":-3,"u":18446744073709551615,"t":true,"n":null,)"
                     R"("a":[1,{"x":[]},{}],"d":8.1,"z":0.0})";
  boost::json::value v = boost::json::parse(text);
  EXPECT_EQ(to_json_text(v),
            R"({"s":"a\"b\\c\n\u0001é","i":-3,"u":18446744073709551615,"t":true,"n":null,)"
            R"("a":[1,{"x":[]},{}],"d":8.1,"z":0.0})");
  boost::json::value no_doubles = boost::json::parse(R"({"k":["v",1,false]})");
  EXPECT_EQ(to_json_text(no_doubles), boost::json::serialize(no_doubles));
}

TEST(ToJsonText, AppendsAndFindsDoublesAnywhere) {
  boost::json::value plain = boost::json::parse(R"({"a":[1,"x",{"b":null}],"c":true})");
  boost::json::value nested = boost::json::parse(R"({"a":[1,{"b":2.5}]})");
  EXPECT_FALSE(contains_double(plain));
  EXPECT_TRUE(contains_double(nested));
  EXPECT_TRUE(contains_double(nested.as_object()));
  std::string out = "prefix:";
  append_json_text(out, nested.as_object());
  EXPECT_EQ(out, R"(prefix:{"a":[1,{"b":2.5}]})");
  out.clear();
  append_json_text(out, plain);
  EXPECT_EQ(out, boost::json::serialize(plain));
}

TEST(AppendJsonString, EscapesEveryByteAsBoostSerializeDoes) {
  for (int byte = 0; byte < 256; ++byte) {
    const std::string text = std::string("a") + static_cast<char>(byte) + "b";
    std::string out = "x";
    append_json_string(out, text);
    EXPECT_EQ(out, "x" + boost::json::serialize(boost::json::string(text))) << "byte " << byte;
  }
  for (const std::string& text :
       {std::string(), std::string("\"\\\"\\"), std::string("line\nbreak\ttab\r\f\b\x01\x1f"),
        std::string("caf\xc3\xa9 </script> \xf0\x9f\x98\x80"), std::string(1000, '\\'),
        std::string("\0\0", 2)}) {
    std::string out;
    append_json_string(out, text);
    EXPECT_EQ(out, boost::json::serialize(boost::json::string(text)));
    EXPECT_EQ(boost::json::parse(out).as_string(), text);
  }
}

}  // namespace
}  // namespace asya
