// The Asya side of the socket rows: the C++ runtime library serving a handler that returns its
// payload unchanged (no work), configured like any runtime (ASYA_SOCKET_PATH, ...).
#include <asya/runtime.hpp>

int main() {
  return asya::serve([](const asya::Json& payload) -> asya::Outputs { return payload; });
}
