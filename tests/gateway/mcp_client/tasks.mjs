// Drives MCP Tasks on asya-gateway with the official MCP TypeScript SDK: one client (one session),
// one JSON command per stdin line, one JSON answer per stdout line. Usage:
//   node tasks.mjs <gateway url> [bearer token]
// Commands: {"op": "tools"} | {"op": "stream", "name", "arguments", "ttl"?} (callToolStream:
// every message until the end) | {"op": "create", "name", "arguments", "ttl"?} (tools/call with a
// task: the CreateTaskResult) | {"op": "get"|"result"|"cancel", "taskId"} | {"op": "list",
// "cursor"?} | {"op": "raw", "method", "params"} (any request, result schema unchecked).
// An answer is {"result": ...} or {"error": {"code", "message"}}. Used by
// tests/gateway/test_mcp_tasks.py and tests/e2e_gateway/test_mcp_tasks_e2e.py.
import readline from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateTaskResultSchema, CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";

const [url, token] = process.argv.slice(2);
const headers = token ? { Authorization: `Bearer ${token}` } : {};
const client = new Client({ name: "asya-tasks-client", version: "1.0.0" });
const transport = new StreamableHTTPClientTransport(new URL("/mcp", url), { requestInit: { headers } });
await client.connect(transport);
const statusNotifications = [];
const deliver = transport.onmessage;
transport.onmessage = (message, extra) => {
  if (message.method === "notifications/tasks/status") statusNotifications.push(message.params);
  deliver?.(message, extra);
};
const tasks = client.experimental.tasks;
const long = { timeout: 300000 };

async function run(command) {
  switch (command.op) {
    case "capabilities":
      return client.getServerCapabilities();
    case "tools":
      return (await client.listTools()).tools;
    case "stream": {
      const messages = [];
      const task = command.ttl === undefined ? {} : { ttl: command.ttl };
      for await (const message of tasks.callToolStream(
        { name: command.name, arguments: command.arguments ?? {} }, CallToolResultSchema,
        { ...long, task })) {
        messages.push(message.type === "error"
          ? { type: "error", error: { code: message.error.code, message: message.error.message } }
          : message);
      }
      return messages;
    }
    case "create":
      return client.request(
        { method: "tools/call", params: { name: command.name, arguments: command.arguments ?? {} } },
        CreateTaskResultSchema, { ...long, task: command.ttl === undefined ? {} : { ttl: command.ttl } });
    case "get":
      return tasks.getTask(command.taskId, long);
    case "result":
      return tasks.getTaskResult(command.taskId, CallToolResultSchema, long);
    case "cancel":
      return tasks.cancelTask(command.taskId, long);
    case "list":
      return tasks.listTasks(command.cursor, long);
    case "statusNotifications":
      return statusNotifications;
    case "raw":
      return client.request({ method: command.method, params: command.params ?? {} },
                            z.object({}).passthrough(), long);
    default:
      throw new Error(`unknown op ${command.op}`);
  }
}

for await (const line of readline.createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  let answer;
  try {
    answer = { result: await run(JSON.parse(line)) };
  } catch (e) {
    answer = { error: { code: e?.code ?? null, message: String(e?.message ?? e) } };
  }
  console.log(JSON.stringify(answer));
}
await client.close();
process.exit(0);
