// asya-cpp-echo: the echo handler served over the Asya socket protocol. Configure it with the
// runtime's environment variables (ASYA_SOCKET_PATH, ...); see README.md.
#include <asya/runtime.hpp>

#include "echo.hpp"

int main() {
  return asya::serve(echo::handle);
}
