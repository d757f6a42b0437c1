/**
 * A TCP proxy in front of the test server that loses one COMMIT, as a network failure at the worst
 * moment does. On the first transaction whose statements carry `marker`, the client's COMMIT is
 * either passed on and its answer lost (`answer-lost`: the server commits, the client never hears)
 * or never delivered (`never-arrives`: the server's backend finds its client gone and aborts). Either
 * way the client's socket is destroyed and the server's side ended, so its backend ends too. Everything else passes through untouched.
 */
import net from 'node:net';

export type CommitCut = 'answer-lost' | 'never-arrives';

export interface CommitCuttingProxy {
  /** postgres://… of the proxy, for the database the test uses. */
  url: string;
  /** Whether the COMMIT was cut (once per proxy). */
  cut(): boolean;
  close(): Promise<void>;
}

export interface CutOptions {
  /** Marked COMMITs to let through before the one that is cut (a later tenant's). */
  skip?: number;
  /** After the cut, every new connection is closed at once: the server cannot be reached again. */
  refuseAfterCut?: boolean;
}

export async function startCommitCuttingProxy(databaseUrl: string, marker: string, mode: CommitCut, options: CutOptions = {}): Promise<CommitCuttingProxy> {
  const target = new URL(databaseUrl);
  let didCut = false;
  let toSkip = options.skip ?? 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (didCut && options.refuseAfterCut) return void client.destroy();
    const upstream = net.connect({ host: target.hostname, port: Number(target.port || 5432) });
    sockets.add(client).add(upstream);
    const forget = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', forget).on('close', forget);
    upstream.on('error', forget).on('close', forget);
    upstream.pipe(client);
    let inMarkedTransaction = false;
    client.on('data', (chunk: Buffer) => {
      const text = chunk.toString("latin1");
      // A new transaction, or the end of one that is not the marked one's COMMIT, resets the watch.
      if (/\bbegin\b/i.test(text) && !text.includes(marker)) inMarkedTransaction = false;
      if (/\brollback\b/i.test(text)) inMarkedTransaction = false;
      if (text.includes(marker)) inMarkedTransaction = true;
      if (!didCut && inMarkedTransaction && /\bcommit\b/i.test(text) && toSkip-- === 0) {
        didCut = true;
        upstream.unpipe(client);
        client.removeListener('close', forget);
        client.destroy();
        // The server reads what was sent before the end of the stream: the COMMIT, or nothing more.
        if (mode === 'answer-lost') upstream.end(chunk);
        else upstream.end();
        return;
      }
      if (/\bcommit\b/i.test(text)) inMarkedTransaction = false;
      upstream.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(databaseUrl);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as net.AddressInfo).port);
  return {
    url: url.toString(),
    cut: () => didCut,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
