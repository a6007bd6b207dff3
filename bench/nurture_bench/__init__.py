"""The ingest benchmark (bench/README.md), one module per concern:

- `traffic`: the website's traffic, and its shapes (browser, batched) as the track handler receives them;
- `capacity`: what the handler's requests cost: DynamoDB write units by AWS's rules (table and
  each index), AWS calls;
- `expressions`: DynamoDB's expression language, for the fake;
- `fake_aws`: DynamoDB and EventBridge answered in-process, for the CPU measurement;
- `replay`: the stream replayed under moto: write units and calls per event;
- `cpu`: handler versus batched-write baseline CPU per event;
- `cold_start`: every function's import and first invocation against the emulator over HTTP;
- `cli`: the options, the run and the JSON report (`bench/ingest.py` runs it).

`common` holds the project's paths, the region and the progress log.
"""
