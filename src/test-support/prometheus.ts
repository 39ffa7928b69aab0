/**
 * Prometheus' exposition format read by a real parser: the Python reference implementation
 * (`prometheus_client.parser.text_string_to_metric_families`, Debian's
 * python3-prometheus-client, through /usr/bin/python3). A missing module fails the test.
 */
import { requirePython3Module, run } from './tools.js'

/** One sample as the parser read it: label values unescaped. */
export interface PromSample { name: string; labels: Record<string, string>; value: number }
/** One metric family: its HELP text, TYPE and samples. */
export interface PromFamily { name: string; type: string; help: string; samples: PromSample[] }

const PARSER = String.raw`
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({'name': f.name, 'type': f.type, 'help': f.documentation,
                'samples': [{'name': s.name, 'labels': s.labels, 'value': s.value} for s in f.samples]})
print(json.dumps(out))
`

/** Parse exposition text; throws with the parser's own message when it refuses the text. */
export function parseExposition(text: string): PromFamily[] {
  requirePython3Module('prometheus_client.parser', 'python3-prometheus-client')
  const r = run('/usr/bin/python3', ['-c', PARSER], { input: text })
  if (r.code !== 0) throw new Error(`prometheus_client refused the exposition text: ${r.stderr.trim().split('\n').pop()}`)
  return JSON.parse(r.stdout) as PromFamily[]
}

/** The samples of one metric, by name. */
export function samplesOf(families: PromFamily[], name: string): PromSample[] {
  return families.filter((f) => f.name === name).flatMap((f) => f.samples)
}
