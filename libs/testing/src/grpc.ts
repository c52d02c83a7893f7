import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { loadOrchestratorProto, type OrchestratorServiceClient } from "@orch/proto";

/** A gRPC client of the orchestrator, with `call` for its unary methods by name. */
export interface GrpcTestClient {
  client: OrchestratorServiceClient;
  call<Res = any>(method: string, req: unknown): Promise<Res>;
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
    close: () => client.close(),
  };
}
