/**
 * Embedded servers this process is running, by port: a command that connects to one by its URL
 * (`pnpm demo` starts the server, then runs the CLI against `DATABASE_URL=postgres://…:<port>`)
 * can still reach PGlite itself for what a socket cannot do — a schema dump. Kept apart from
 * pglite-server.ts so that looking here never loads PGlite.
 */
export interface InProcessServer {
  dumpSchema(schema: string): Promise<string>;
}

const running = new Map<number, InProcessServer>();

export function registerInProcessServer(port: number, server: InProcessServer): () => void {
  running.set(port, server);
  return () => void running.delete(port);
}

/** The embedded server of this process listening at `host:port`, if any. */
export function inProcessServerAt(host: string, port: number): InProcessServer | undefined {
  return ['127.0.0.1', 'localhost'].includes(host) ? running.get(port) : undefined;
}
