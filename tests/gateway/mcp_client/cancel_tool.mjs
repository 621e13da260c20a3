// Starts one tools/call through asya-gateway's /mcp with the official MCP TypeScript SDK, cancels
// it with an AbortSignal (the SDK sends notifications/cancelled) when a line arrives on stdin, and
// after a second line prints one JSON line {"error": why the call rejected, "results": every
// tool result the server sent}. Usage: node cancel_tool.mjs <gateway url> <tool> '<arguments>'
// Prints {"started": true} once the call is sent. Used by tests/gateway/test_mcp_cancel.py.
import readline from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, name, args] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const client = new Client({ name: "asya-cancel-client", version: "1.0.0" });
const transport = new StreamableHTTPClientTransport(new URL("/mcp", url));
await client.connect(transport);
const results = [];
const deliver = transport.onmessage;
transport.onmessage = (message, extra) => {
  if (message.result && "content" in message.result) results.push(message);
  deliver?.(message, extra);
};
const controller = new AbortController();
const call = client.callTool({ name, arguments: JSON.parse(args ?? "{}") }, undefined, {
  signal: controller.signal,
  onprogress: () => {},
  timeout: 120000,
});
let error = null;
const settled = call.then(
  () => {},
  (e) => {
    error = String(e?.message ?? e);
  },
);
console.log(JSON.stringify({ started: true }));
await lines.next(); // "cancel"
controller.abort("user pressed stop");
await settled;
await lines.next(); // "done": the job has finished meanwhile
await transport.terminateSession();
await client.close();
console.log(JSON.stringify({ error, results }));
process.exit(0);
