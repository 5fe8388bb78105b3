// Triple consumer bindings for meshgate.interop.v1.Greeter, hand-written for the same reason as
// greeter_triple.go (protoc-gen-go-triple is not served by the module proxy): the consumer half,
// used by the peer's client mode (--call).

package greeterpb

import (
	"context"

	"dubbo.apache.org/dubbo-go/v3/client"
	"dubbo.apache.org/dubbo-go/v3/protocol/triple/triple_protocol"
)

// GreeterClient calls a remote Greeter over Triple.
type GreeterClient struct {
	conn *client.Connection
}

var greeterClientInfo = client.ClientInfo{
	InterfaceName: GreeterName,
	MethodNames:   []string{"SayHello", "Fail", "Slow", "SayHelloStream"},
	ConnectionInjectFunc: func(raw any, conn *client.Connection) {
		raw.(*GreeterClient).conn = conn
	},
}

// NewGreeterClient references the Greeter with opts (URL, group, version, timeout).
func NewGreeterClient(cli *client.Client, opts ...client.ReferenceOption) (*GreeterClient, error) {
	conn, err := cli.DialWithInfo(GreeterName, &greeterClientInfo, opts...)
	if err != nil {
		return nil, err
	}
	return &GreeterClient{conn: conn}, nil
}

func (c *GreeterClient) unary(ctx context.Context, method string, req any) (*HelloReply, error) {
	reply := new(HelloReply)
	if err := c.conn.CallUnary(ctx, []any{req}, reply, method); err != nil {
		return nil, err
	}
	return reply, nil
}

// SayHello answers "hello <name>".
func (c *GreeterClient) SayHello(ctx context.Context, req *HelloRequest) (*HelloReply, error) {
	return c.unary(ctx, "SayHello", req)
}

// Fail always answers a business error.
func (c *GreeterClient) Fail(ctx context.Context, req *HelloRequest) (*HelloReply, error) {
	return c.unary(ctx, "Fail", req)
}

// Slow answers after req.Millis.
func (c *GreeterClient) Slow(ctx context.Context, req *SlowRequest) (*HelloReply, error) {
	return c.unary(ctx, "Slow", req)
}

// SayHelloStream calls onReply for each streamed reply and returns the stream's final error.
func (c *GreeterClient) SayHelloStream(ctx context.Context, req *HelloRequest, onReply func(*HelloReply)) error {
	raw, err := c.conn.CallServerStream(ctx, req, "SayHelloStream")
	if err != nil {
		return err
	}
	stream := raw.(*triple_protocol.ServerStreamForClient)
	defer stream.Close()
	for {
		reply := new(HelloReply)
		if !stream.Receive(reply) {
			return stream.Err()
		}
		onReply(reply)
	}
}
