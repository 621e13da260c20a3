// Calls one tool through asya-gateway's /mcp with the official MCP TypeScript SDK and prints one
// JSON line {"result": CallToolResult, "progress": [notification params...]}.
// Usage: [ASYA_GATEWAY_TOKEN=...] node call_tool.mjs <gateway url> <tool name> '<arguments as JSON>'
// Used by tests/e2e_gateway, where real sidecars and runtimes run the pipeline.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, name, args] = process.argv.slice(2);
const client = new Client({ name: "asya-e2e-client", version: "1.0.0" });
// ASYA_GATEWAY_TOKEN, when set, is sent as the bearer token (a gateway with a client token).
const token = process.env.ASYA_GATEWAY_TOKEN;
const transport = new StreamableHTTPClientTransport(
  new URL("/mcp", url),
  token ? { requestInit: { headers: { Authorization: `Bearer ${token}` } } } : undefined,
);
await client.connect(transport);
const progress = [];
const result = await client.callTool(
  { name, arguments: JSON.parse(args ?? "{}") },
  undefined,
  { onprogress: (p) => progress.push(p), timeout: 60000 },
);
await transport.terminateSession();
await client.close();
console.log(JSON.stringify({ result, progress }));
