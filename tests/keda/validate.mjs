// Reads a JSON array of Kubernetes objects on stdin; validates each keda.sh object against the
// schema generated from KEDA's CRDs (@kubernetes-models/keda). Prints one JSON line per object;
// exits 1 when any is invalid.
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";

const KINDS = { ScaledObject, TriggerAuthentication };
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
let failed = false;
for (const object of JSON.parse(Buffer.concat(chunks).toString())) {
  const Kind = KINDS[object.kind];
  if (!Kind) {
    console.log(JSON.stringify({ kind: object.kind, valid: false, error: "not a KEDA kind this check knows" }));
    failed = true;
    continue;
  }
  try {
    new Kind(object).validate();
    console.log(JSON.stringify({ kind: object.kind, name: object.metadata?.name, valid: true }));
  } catch (error) {
    failed = true;
    console.log(JSON.stringify({ kind: object.kind, name: object.metadata?.name, valid: false, error: String(error.message ?? error) }));
  }
}
process.exit(failed ? 1 : 0);
