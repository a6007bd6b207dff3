"""The ingest benchmark (bench/README.md), one module per concern:

- `traffic`: the website's traffic over a simulated month, as the track handler receives it;
- `capacity`: what the handler's requests cost: DynamoDB write units by AWS's rules, AWS calls;
- `fake_aws`: DynamoDB and EventBridge answered in-process, for the CPU measurement;
- `replay`: the stream replayed under moto: write units and calls per event;
- `cpu`: handler versus baseline CPU per event;
- `cold_start`: the handlers' import times and what their first invocation builds;
- `cli`: the options, the run and the JSON report (`bench/ingest.py` runs it).

`common` holds the project's paths, the region and the progress log.
"""
