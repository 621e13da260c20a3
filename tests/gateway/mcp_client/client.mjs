// A real MCP client (the official TypeScript SDK) against asya-gateway's /mcp.
// Usage: node client.mjs <gateway url>
// Prints one JSON object with what it observed; test_mcp.py plays the actors meanwhile.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = new URL("/mcp", process.argv[2]);
const out = {};
const client = new Client({ name: "asya-test-client", version: "1.0.0" });
const transport = new StreamableHTTPClientTransport(url);
await client.connect(transport);
out.sessionId = transport.sessionId;
out.protocolVersion = transport.protocolVersion ?? null;
out.serverInfo = client.getServerVersion();

const listed = await client.listTools();
out.tools = listed.tools;

const progress = [];
const result = await client.callTool(
  { name: "echo", arguments: { text: "from-sdk" } },
  undefined,
  { onprogress: (p) => progress.push(p), timeout: 60000 },
);
out.call = result;
out.progress = progress;

out.invalid = await client.callTool({ name: "echo", arguments: { text: 5 } });

try {
  await client.callTool({ name: "no-such-tool", arguments: {} });
  out.unknown = "no error";
} catch (error) {
  out.unknown = { code: error.code, message: error.message };
}

await transport.terminateSession();
out.terminatedSessionId = transport.sessionId ?? null;
const stale = new StreamableHTTPClientTransport(url, { sessionId: out.sessionId });
const staleClient = new Client({ name: "stale", version: "1.0.0" });
try {
  // Reuse the ended session id without initializing: the gateway must answer 404.
  await stale.start();
  await stale.send({ jsonrpc: "2.0", id: 99, method: "tools/list", params: {} });
  out.afterEnd = "no error";
} catch (error) {
  out.afterEnd = { message: String(error.message ?? error) };
}
void staleClient;
await client.close();
console.log(JSON.stringify(out));
