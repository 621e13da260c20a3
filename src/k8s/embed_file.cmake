# cmake -DINPUT=<file> -DOUTPUT=<cpp> -DSYMBOL=<function> -P embed_file.cmake
# Writes a .cpp defining `std::string_view asya::k8s::<SYMBOL>()` that returns the file's bytes.
file(READ ${INPUT} content HEX)
string(LENGTH "${content}" hex_length)
math(EXPR byte_count "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${content}")
string(REGEX REPLACE "(('\\\\x[0-9a-f][0-9a-f]',){16})" "\\1\n" bytes "${bytes}")
file(WRITE ${OUTPUT}.tmp
"// Generated from ${INPUT} by src/k8s/embed_file.cmake; do not edit.\n#include <string_view>\n\nnamespace asya::k8s {\nnamespace {\nconst char kBytes[] = {\n${bytes}'\\0'};\n}  // namespace\n\nstd::string_view ${SYMBOL}() { return {kBytes, ${byte_count}}; }\n\n}  // namespace asya::k8s\n")
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUTPUT}.tmp)
