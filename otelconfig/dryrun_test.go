package otelconfig

import (
	"context"
	"testing"
)

// TestDryRunModel: the dry run cuts the batch log queues in a copy; the
// loaded model is left as it was, and a queue size otelconf refuses is
// left for it to refuse.
func TestDryRunModel(t *testing.T) {
	src := "file_format: \"1.0\"\nlogger_provider:\n  processors:\n" +
		"    - batch:\n        max_queue_size: 50\n        max_export_batch_size: 10\n        exporter: {console: }\n" +
		"    - simple:\n        exporter: {console: }\n" +
		"    - batch:\n        exporter: {console: }\n"
	cfg, err := Load(WithBytes("f.yaml", []byte(src)), WithoutEnv())
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Model
	dm := dryRunModel(m)
	ps, dps := m.LoggerProvider.Processors, dm.LoggerProvider.Processors
	if *ps[0].Batch.MaxQueueSize != 50 || ps[2].Batch.MaxQueueSize != nil {
		t.Errorf("the loaded model changed: %v, %v", *ps[0].Batch.MaxQueueSize, ps[2].Batch.MaxQueueSize)
	}
	if *dps[0].Batch.MaxQueueSize != 1 || *dps[2].Batch.MaxQueueSize != 1 || dps[1].Simple == nil {
		t.Errorf("dry run model: queues %v, %v, simple %v", dps[0].Batch.MaxQueueSize, dps[2].Batch.MaxQueueSize, dps[1].Simple)
	}
	if *dps[0].Batch.MaxExportBatchSize != 10 || dps[0].Batch.Exporter.Console == nil {
		t.Errorf("dry run model lost the processor's other settings: %+v", dps[0].Batch)
	}
	if ds := DryRun(context.Background(), cfg); len(ds) != 0 {
		t.Errorf("dry run = %v", ds)
	}

	bad := -1
	ps[0].Batch.MaxQueueSize = &bad
	if q := *dryRunModel(m).LoggerProvider.Processors[0].Batch.MaxQueueSize; q != -1 {
		t.Errorf("a refused queue size became %d", q)
	}
	if err := dryRunSDK(context.Background(), m); err == nil {
		t.Error("otelconf accepted max_queue_size -1 in the dry run")
	}
}
