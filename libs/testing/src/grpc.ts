import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { loadOrchestratorProto, structToJson, type OrchestratorServiceClient } from "@orch/proto";

/** A gRPC client of the orchestrator, with `call` for its unary methods by name. */
export interface GrpcTestClient {
  client: OrchestratorServiceClient;
  call<Res = any>(method: string, req: unknown): Promise<Res>;
  /**
   * WatchSession's messages (their `data` as JSON) until the watch ends, or until `until` accepts
   * one (the watch is then cancelled).
   */
  watchSessions(req: { session_id?: string; run_id?: string; after_seq?: string }, until?: (m: any) => boolean): Promise<any[]>;
  close(): void;
}

export function grpcClient(port: number): GrpcTestClient {
  const proto = loadOrchestratorProto();
  const client = new proto.orchestrator.v1.OrchestratorService(`127.0.0.1:${port}`, credentials.createInsecure());
  return {
    client,
    call<Res = any>(method: string, req: unknown): Promise<Res> {
      const fn = (client as unknown as Record<string, (r: unknown, m: Metadata, cb: (e: ServiceError | null, r?: Res) => void) => void>)[method];
      if (!fn) return Promise.reject(new Error(`no gRPC method ${method}`));
      return new Promise((resolve, reject) => fn.call(client, req, new Metadata(), (err, res) => (err ? reject(err) : resolve(res!))));
    },
    watchSessions(req, until) {
      return new Promise((resolve, reject) => {
        const out: any[] = [];
        const s = client.WatchSession(req);
        s.on("data", (m: any) => {
          out.push({ ...m, data: structToJson(m.data) });
          if (until?.(m)) {
            s.cancel();
            resolve(out);
          }
        });
        s.on("end", () => resolve(out));
        s.on("error", (err: ServiceError) => (err.code === status.CANCELLED ? resolve(out) : reject(err)));
      });
    },
    close: () => client.close(),
  };
}
