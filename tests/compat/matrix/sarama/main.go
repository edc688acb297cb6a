// sarama driver for the client matrix: serves the scenario's primitives as JSON lines on
// stdin/stdout (protocol in ../clients/remote.py; steps and checks in ../scenario.py).
//
// Built offline against Debian's packaged sarama (golang-github-shopify-sarama-dev) with
// Debian's Go: GO111MODULE=off GOPATH=/usr/share/gocode go build (see ../../test_matrix.py).
// Usage: sarama-driver BOOTSTRAP   (SARAMA_VERSION names the packaged version in the report)
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"log"
	"os"
	"runtime"
	"time"

	"github.com/Shopify/sarama"
)

var bootstrap []string

// The newest protocol version this sarama knows; it picks request versions from it.
var kafkaVersion = sarama.V2_1_0_0

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = kafkaVersion
	c.ClientID = "riptide-matrix"
	c.Metadata.Retry.Max = 3
	return c
}

func withAdmin(fn func(sarama.ClusterAdmin) (interface{}, error)) (interface{}, error) {
	a, err := sarama.NewClusterAdmin(bootstrap, config())
	if err != nil {
		return nil, err
	}
	defer a.Close()
	return fn(a)
}

func withClient(fn func(sarama.Client) (interface{}, error)) (interface{}, error) {
	c, err := sarama.NewClient(bootstrap, config())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return fn(c)
}

type message struct {
	Key     *string
	Value   string
	Headers [][2]string
}

func decodeMessages(raw json.RawMessage) ([]message, error) {
	var rows [][]json.RawMessage
	if err := json.Unmarshal(raw, &rows); err != nil {
		return nil, err
	}
	out := make([]message, 0, len(rows))
	for _, r := range rows {
		var m message
		if err := json.Unmarshal(r[0], &m.Key); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(r[1], &m.Value); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(r[2], &m.Headers); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

var codecs = map[string]sarama.CompressionCodec{
	"": sarama.CompressionNone, "gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
	"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD,
}

func produce(topic string, msgs []message, acks int, codec string) error {
	c := config()
	c.Producer.RequiredAcks = sarama.RequiredAcks(acks)
	c.Producer.Compression = codecs[codec]
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Producer.Return.Successes = true
	c.Producer.Retry.Max = 0
	p, err := sarama.NewSyncProducer(bootstrap, c)
	if err != nil {
		return err
	}
	defer p.Close()
	batch := make([]*sarama.ProducerMessage, 0, len(msgs))
	for _, m := range msgs {
		pm := &sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.StringEncoder(m.Value)}
		if m.Key != nil {
			pm.Key = sarama.StringEncoder(*m.Key)
		}
		for _, h := range m.Headers {
			pm.Headers = append(pm.Headers, sarama.RecordHeader{Key: []byte(h[0]), Value: []byte(h[1])})
		}
		batch = append(batch, pm)
	}
	return p.SendMessages(batch)
}

func str(b []byte) interface{} {
	if b == nil {
		return nil
	}
	return string(b)
}

func consume(topic string, offset int64, count int, timeoutS float64) (interface{}, error) {
	return withClient(func(cl sarama.Client) (interface{}, error) {
		consumer, err := sarama.NewConsumerFromClient(cl)
		if err != nil {
			return nil, err
		}
		defer consumer.Close()
		pc, err := consumer.ConsumePartition(topic, 0, offset)
		if err != nil {
			return nil, err
		}
		defer pc.Close()
		out := [][]interface{}{}
		deadline := time.After(time.Duration(timeoutS * float64(time.Second)))
		for len(out) < count {
			select {
			case m := <-pc.Messages():
				hs := [][]interface{}{}
				for _, h := range m.Headers {
					hs = append(hs, []interface{}{string(h.Key), str(h.Value)})
				}
				out = append(out, []interface{}{str(m.Key), str(m.Value), hs})
			case e := <-pc.Errors():
				return nil, e
			case <-deadline:
				return out, nil
			}
		}
		return out, nil
	})
}

type handler struct {
	count  int
	out    *[]string
	cancel context.CancelFunc
}

func (h handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		if len(*h.out) >= h.count {
			break
		}
		*h.out = append(*h.out, string(m.Value))
		s.MarkMessage(m, "")
		if len(*h.out) >= h.count {
			h.cancel()
			break
		}
	}
	return nil
}

// groupConsume joins `group`, consumes `count` records, and closes the group, which commits
// the marked offsets (this sarama has no synchronous commit call).
func groupConsume(topic, group string, count int, timeoutS float64) (interface{}, error) {
	c := config()
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Group.Session.Timeout = 10 * time.Second
	c.Consumer.Group.Heartbeat.Interval = time.Second
	if os.Getenv("SARAMA_OFFSETS_RETENTION") != "" {
		// With a retention set, this sarama commits with OffsetCommit v2 instead of v1.
		c.Consumer.Offsets.Retention = 24 * time.Hour
	}
	g, err := sarama.NewConsumerGroup(bootstrap, group, c)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutS*float64(time.Second)))
	defer cancel()
	out := []string{}
	errs := make(chan error, 1)
	go func() {
		for e := range g.Errors() {
			select {
			case errs <- e:
			default:
			}
		}
	}()
	for ctx.Err() == nil && len(out) < count {
		if err := g.Consume(ctx, []string{topic}, handler{count, &out, cancel}); err != nil {
			g.Close()
			return nil, err
		}
	}
	if err := g.Close(); err != nil {
		return nil, err
	}
	select {
	case e := <-errs:
		return out, fmt.Errorf("consumer group error: %v", e)
	default:
	}
	return out, nil
}

func handle(op string, args []json.RawMessage) (interface{}, error) {
	var topic string
	if len(args) > 0 {
		json.Unmarshal(args[0], &topic)
	}
	argInt := func(i int) int64 {
		var v int64
		json.Unmarshal(args[i], &v)
		return v
	}
	argFloat := func(i int) float64 {
		var v float64
		json.Unmarshal(args[i], &v)
		return v
	}
	switch op {
	case "version":
		v := os.Getenv("SARAMA_VERSION")
		if v == "" {
			v = "unknown"
		}
		return map[string]string{"client": "sarama (Go)", "version": v,
			"details": fmt.Sprintf("%s, config.Version %s", runtime.Version(), kafkaVersion)}, nil
	case "topics":
		// Metadata, not ClusterAdmin.ListTopics: this sarama's ListTopics also sends
		// DescribeConfigs v0 for every topic (reported by the describe_configs step).
		return withClient(func(c sarama.Client) (interface{}, error) {
			if err := c.RefreshMetadata(); err != nil {
				return nil, err
			}
			return c.Topics()
		})
	case "create_topic":
		return withAdmin(func(a sarama.ClusterAdmin) (interface{}, error) {
			return nil, a.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
		})
	case "produce":
		msgs, err := decodeMessages(args[1])
		if err != nil {
			return nil, err
		}
		var codec string
		json.Unmarshal(args[3], &codec)
		return nil, produce(topic, msgs, int(argInt(2)), codec)
	case "consume":
		return consume(topic, argInt(1), int(argInt(2)), argFloat(3))
	case "end_offset":
		return withClient(func(c sarama.Client) (interface{}, error) { return c.GetOffset(topic, 0, sarama.OffsetNewest) })
	case "offset_for_time":
		return withClient(func(c sarama.Client) (interface{}, error) { return c.GetOffset(topic, 0, argInt(1)) })
	case "group_consume":
		var group string
		json.Unmarshal(args[1], &group)
		return groupConsume(topic, group, int(argInt(2)), argFloat(3))
	case "committed":
		var group string
		json.Unmarshal(args[1], &group)
		return withAdmin(func(a sarama.ClusterAdmin) (interface{}, error) {
			r, err := a.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0}})
			if err != nil {
				return nil, err
			}
			b := r.GetBlock(topic, 0)
			if b == nil {
				return nil, fmt.Errorf("no offset block in the OffsetFetch answer")
			}
			if b.Err != sarama.ErrNoError {
				return nil, b.Err
			}
			return b.Offset, nil
		})
	case "describe_configs":
		return withAdmin(func(a sarama.ClusterAdmin) (interface{}, error) {
			entries, err := a.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
			out := map[string]string{}
			for _, e := range entries {
				out[e.Name] = e.Value
			}
			return out, err
		})
	case "delete_topic":
		return withAdmin(func(a sarama.ClusterAdmin) (interface{}, error) { return nil, a.DeleteTopic(topic) })
	}
	return nil, fmt.Errorf("unknown op %q", op)
}

func main() {
	bootstrap = []string{os.Args[1]}
	sarama.Logger = log.New(ioutil.Discard, "", 0)
	if os.Getenv("SARAMA_DEBUG") != "" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	enc := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req struct {
			Op   string            `json:"op"`
			Args []json.RawMessage `json:"args"`
		}
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			enc.Encode(map[string]string{"error": err.Error()})
			continue
		}
		result, err := handle(req.Op, req.Args)
		if err != nil {
			enc.Encode(map[string]string{"error": fmt.Sprintf("%T: %v", err, err)})
		} else {
			enc.Encode(map[string]interface{}{"ok": result})
		}
	}
}
