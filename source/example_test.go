package source_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zulip-bridge/zulip-bridge/source"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// Handle every message a bot receives, as the Python bindings'
// call_on_each_message does, here against the Zulip simulator. A handler
// error would leave the message unacknowledged: it would come again.
func Example_callOnEachMessage() {
	srv := zuliptest.NewServer(zuliptest.Config{})
	defer srv.Close()

	client, err := source.NewClient(source.Config{
		Site:   srv.URL,
		Email:  zuliptest.DefaultBot.Email,
		APIKey: zuliptest.DefaultBot.APIKey,
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	err = client.CallOnEachMessage(ctx, func(ctx context.Context, msg source.Message) error {
		var m struct {
			Stream  string `json:"display_recipient"`
			Topic   string `json:"subject"`
			Sender  string `json:"sender_full_name"`
			Content string `json:"content"`
		}
		if err := json.Unmarshal(msg.Raw, &m); err != nil {
			return err
		}
		fmt.Printf("#%s > %s: %s: %s\n", m.Stream, m.Topic, m.Sender, m.Content)
		stop()
		return nil
	}, source.OnRegistered(func(context.Context, *source.Registration) error {
		// Someone writes once the queue exists.
		_, err := srv.SendMessage(zuliptest.SendRequest{
			Sender: "iago@zulip.example.com", To: "Denmark", Topic: "greetings", Content: "hello",
		})
		return err
	}))
	fmt.Println("stopped:", errors.Is(err, context.Canceled))
	// Output:
	// #Denmark > greetings: Iago: hello
	// stopped: true
}
