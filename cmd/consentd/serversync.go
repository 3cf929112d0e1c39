package main

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// varzSubject asks every server of a deployment for its /varz, over the
// system account.
const varzSubject = "$SYS.REQ.SERVER.PING.VARZ"

// serverSyncWait bounds how long streamServersSyncEveryWrite waits for the
// servers' answers.
const serverSyncWait = time.Second

// streamServersSyncEveryWrite asks the servers that hold the stream, over
// the system account connection sys, whether their JetStream fsyncs every
// write (sync_interval: always). known is false when not every one of them
// answered within serverSyncWait (or the stream has no cluster info).
func streamServersSyncEveryWrite(ctx context.Context, sys *nats.Conn, info *jetstream.StreamInfo) (always, known bool) {
	if info == nil || info.Cluster == nil || info.Cluster.Leader == "" {
		return false, false
	}
	waiting := map[string]bool{info.Cluster.Leader: true}
	for _, p := range info.Cluster.Replicas {
		waiting[p.Name] = true
	}
	inbox := sys.NewRespInbox()
	sub, err := sys.SubscribeSync(inbox)
	if err != nil {
		return false, false
	}
	defer sub.Unsubscribe() //nolint:errcheck // a subscription of this call only
	if err := sys.PublishRequest(varzSubject, inbox, nil); err != nil {
		return false, false
	}
	ctx, cancel := context.WithTimeout(ctx, serverSyncWait)
	defer cancel()
	always = true
	for len(waiting) > 0 {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return false, false
		}
		name, syncAlways, err := varzSync(msg.Data)
		if err != nil || !waiting[name] {
			continue
		}
		delete(waiting, name)
		always = always && syncAlways
	}
	return always, true
}

// varzSync reads the server name and JetStream's sync_always from a
// server's answer to varzSubject.
func varzSync(data []byte) (name string, syncAlways bool, err error) {
	var resp struct {
		Server struct {
			Name string `json:"name"`
		} `json:"server"`
		Data struct {
			JetStream struct {
				Config *struct {
					SyncAlways bool `json:"sync_always"`
				} `json:"config"`
			} `json:"jetstream"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return "", false, err
	}
	if resp.Data.JetStream.Config == nil {
		return "", false, errors.New("no JetStream configuration in the answer")
	}
	return resp.Server.Name, resp.Data.JetStream.Config.SyncAlways, nil
}
