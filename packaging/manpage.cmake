# Writes a man page (section 1) made of a program's own --help text, so the page never disagrees
# with the binary. Run by packaging/CMakeLists.txt at build time:
#   cmake -DPROGRAM=/path/to/asya -DNAME=asya -DHELP_FLAG=--help-all -DSUMMARY="..."
#         -DVERSION=0.1.0 -DSEE_ALSO="asya-sidecar;asya-gateway" -DOUTPUT=asya.1 -P manpage.cmake
foreach(var PROGRAM NAME HELP_FLAG SUMMARY VERSION OUTPUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "manpage.cmake: -D${var}=... is required")
  endif()
endforeach()

# A fixed, empty environment for the program: the page must not depend on who builds it.
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env --unset=ASYA_LOG_LEVEL ${PROGRAM} ${HELP_FLAG}
  OUTPUT_VARIABLE help
  ERROR_VARIABLE errors
  RESULT_VARIABLE status
  TIMEOUT 30)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "manpage.cmake: `${PROGRAM} ${HELP_FLAG}` exited with ${status}: ${errors}")
endif()

# CLI11 prints the program as it was invoked (a build path): show its name instead.
string(REPLACE "${PROGRAM}" "${NAME}" help "${help}")

# roff: a backslash is written \e, a hyphen \- (so flags copy-paste as ASCII), and a line that
# starts with . or ' would be a request: \& before it keeps it text.
string(REPLACE "\\" "\\e" help "${help}")
string(REPLACE "-" "\\-" help "${help}")
string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" help "${help}")
string(REPLACE "-" "\\-" summary "${SUMMARY}")

set(see_also "")
foreach(page ${SEE_ALSO})
  if(NOT page STREQUAL NAME)
    if(see_also)
      string(APPEND see_also ",\n")
    endif()
    string(REPLACE "-" "\\-" escaped "${page}")
    string(APPEND see_also ".BR ${escaped} (1)")
  endif()
endforeach()

string(REPLACE "-" "\\-" escaped_name "${NAME}")
file(WRITE ${OUTPUT}
".\\\" Generated from `${NAME} ${HELP_FLAG}` by packaging/manpage.cmake; do not edit.
.TH \"${NAME}\" 1 \"\" \"asya ${VERSION}\" \"Asya manual\"
.SH NAME
${escaped_name} \\- ${summary}
.SH DESCRIPTION
The text below is what
.B ${escaped_name} ${HELP_FLAG}
prints.
.PP
.nf
${help}
.fi
.SH VERSION
${VERSION}
.SH SEE ALSO
${see_also}
")
