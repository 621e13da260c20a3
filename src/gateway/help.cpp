#include "gateway/help.hpp"

namespace asya::gateway {

std::string help_text() {
  return R"(asya-gateway: serves pipelines as MCP tools and a REST API (see docs/gateway.md).
Tools come from a routes.yaml; each call becomes an envelope on the first actor's queue and the
sidecars report progress and the final result back. All configuration comes from environment
variables:

  ASYA_CONFIG_PATH                 routes.yaml   tools file or directory
  ASYA_GATEWAY_HOST                0.0.0.0       listen address
  ASYA_GATEWAY_PORT                8080          listen port (0: any free port, logged)
  ASYA_GATEWAY_SOCKET              (none)        also listen on this Unix socket (mode 0600), for
                                                 local sidecars: ASYA_GATEWAY_URL=unix:PATH
  ASYA_TRANSPORT                   sqlite        queue transport (ASYA_SQLITE_PATH,
                                                 ASYA_RABBITMQ_URL, ... as for sidecars)
  ASYA_QUEUE_PREFIX                asya-         queue name prefix
  ASYA_GATEWAY_DB                  .asya/gateway.db  SQLite job store file
  ASYA_DATABASE_URL                (unset)       PostgreSQL job store instead of SQLite
  ASYA_GATEWAY_TOKEN               (unset)       bearer token of client endpoints (/mcp, /tools*,
                                                 GET /envelopes*)
  ASYA_GATEWAY_INTERNAL_TOKEN      (unset)       bearer token of sidecar endpoints
                                                 (POST /envelopes*, POST /v1/traces)
  ASYA_GATEWAY_TRACE_MAX_SPANS     1000          spans kept per job (POST /v1/traces)
  ASYA_GATEWAY_TRACE_MAX_SPAN_BYTES 65536        a larger span (as kept: JSON) is refused
  ASYA_GATEWAY_TRACE_RETENTION     24h           spans are removed this long after arriving
  ASYA_GATEWAY_STATUS_FILE         (unset)       status.json of an `asya up` supervisor: replica
                                                 and rate columns of GET /actors
  ASYA_GATEWAY_ALLOWED_ORIGINS     (unset)       comma-separated origins accepted besides
                                                 localhost ones (* allows all)
  ASYA_GATEWAY_ALLOWED_HOSTS       (unset)       comma-separated Host names accepted besides IP
                                                 addresses and localhost (* on 0.0.0.0 / ::)
  ASYA_GATEWAY_MAX_BODY_BYTES      16MiB         request body limit (413 above)
  ASYA_GATEWAY_MAX_CONNECTIONS     1024          open connections at most (fewer when
                                                 ulimit -n is low); one more gets 503
  ASYA_GATEWAY_HEADER_TIMEOUT      10s           a request's headers must arrive within this
  ASYA_GATEWAY_THREADS             4             threads for blocking store and transport calls
  ASYA_GATEWAY_KEEPALIVE           15s           SSE keepalive interval
  ASYA_GATEWAY_MCP_SESSION_TIMEOUT 1h            an MCP session unused this long ends
  ASYA_GATEWAY_MCP_POLL_AFTER      0 (off)       close MCP tools/call streams this long after
                                                 their priming event (clients resume with GET)
  ASYA_GATEWAY_POLL_INTERVAL       2s            how often waiters re-read the job store
  ASYA_GATEWAY_INSTANCE_ID         (unset)       repeated as "instance" in /healthz and /readyz
                                                 (asya up checks it reached its own gateway)
  ASYA_MAX_MESSAGE_BYTES           256MiB        largest envelope the transport accepts
  ASYA_PAYLOAD_STORE               (unset)       file:///dir or s3://bucket/prefix: a call's
                                                 payload over ASYA_PAYLOAD_THRESHOLD (256KiB) is
                                                 stored there and sent by reference
  ASYA_LOG_LEVEL                   info          debug, info, warn, error

Options:
  -h, --help     print this text and exit
  --version      print the version and exit

Exit codes: 0 stopped by SIGTERM/SIGINT; 1 fatal error; 2 invalid configuration or routes file.
)";
}

}  // namespace asya::gateway
