package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"dubbo.apache.org/dubbo-go/v3/protocol/triple/triple_protocol"

	"meshgate.test/peers/go/greeterpb"
)

// GreeterService serves the IDL Greeter; servedBy ("go g1/1.0.0") tells callers who answered.
type GreeterService struct {
	group, servedBy string
}

func newGreeter(group, version string) *GreeterService {
	return &GreeterService{group: group, servedBy: fmt.Sprintf("go %s/%s", group, version)}
}

// Reference keeps the two registrations (g1, g2) apart: dubbo-go keys services by it.
func (g *GreeterService) Reference() string {
	return "Greeter-" + g.group
}

func (g *GreeterService) reply(message string) *greeterpb.HelloReply {
	return &greeterpb.HelloReply{Message: message, ServedBy: g.servedBy}
}

func (g *GreeterService) SayHello(_ context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return g.reply("hello " + req.Name), nil
}

func (g *GreeterService) Fail(_ context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	return nil, triple_protocol.NewError(
		triple_protocol.CodeFailedPrecondition,
		errors.New("greeter business failure for "+req.Name),
	)
}

func (g *GreeterService) Slow(ctx context.Context, req *greeterpb.SlowRequest) (*greeterpb.HelloReply, error) {
	select {
	case <-time.After(time.Duration(req.Millis) * time.Millisecond):
		return g.reply(fmt.Sprintf("slept %dms", req.Millis)), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *GreeterService) SayHelloStream(
	_ context.Context, req *greeterpb.HelloRequest, stream greeterpb.GreeterSayHelloStreamServer,
) error {
	for i := 1; i <= 3; i++ {
		if err := stream.Send(g.reply(fmt.Sprintf("hello %s #%d", req.Name, i))); err != nil {
			return err
		}
	}
	return nil
}
