// Triple server bindings for meshgate.interop.v1.Greeter, written by hand against the
// dubbo-go v3 server API because protoc-gen-go-triple is not served by the module proxy this
// project may use (see tests/peers/README.md). Only the provider half is needed here.

package greeterpb

import (
	"context"

	"dubbo.apache.org/dubbo-go/v3/common/constant"
	"dubbo.apache.org/dubbo-go/v3/protocol/triple/triple_protocol"
	"dubbo.apache.org/dubbo-go/v3/server"
)

// GreeterName is the fully-qualified protobuf name of the service, also its Triple path.
const GreeterName = "meshgate.interop.v1.Greeter"

// GreeterHandler is what a Greeter provider implements.
type GreeterHandler interface {
	SayHello(context.Context, *HelloRequest) (*HelloReply, error)
	Fail(context.Context, *HelloRequest) (*HelloReply, error)
	Slow(context.Context, *SlowRequest) (*HelloReply, error)
	SayHelloStream(context.Context, *HelloRequest, GreeterSayHelloStreamServer) error
}

// GreeterSayHelloStreamServer sends the replies of SayHelloStream.
type GreeterSayHelloStreamServer interface {
	Send(*HelloReply) error
}

type sayHelloStreamServer struct {
	*triple_protocol.ServerStream
}

func (s *sayHelloStreamServer) Send(reply *HelloReply) error {
	return s.ServerStream.Send(reply)
}

// RegisterGreeterHandler exports handler as meshgate.interop.v1.Greeter on srv.
func RegisterGreeterHandler(srv *server.Server, handler GreeterHandler, opts ...server.ServiceOption) error {
	return srv.Register(handler, &greeterServiceInfo, opts...)
}

func unary[Req any](name string, call func(GreeterHandler, context.Context, *Req) (*HelloReply, error)) server.MethodInfo {
	return server.MethodInfo{
		Name:        name,
		Type:        constant.CallUnary,
		ReqInitFunc: func() any { return new(Req) },
		MethodFunc: func(ctx context.Context, args []any, handler any) (any, error) {
			reply, err := call(handler.(GreeterHandler), ctx, args[0].(*Req))
			if err != nil {
				return nil, err
			}
			return triple_protocol.NewResponse(reply), nil
		},
	}
}

var greeterServiceInfo = server.ServiceInfo{
	InterfaceName: GreeterName,
	ServiceType:   (*GreeterHandler)(nil),
	Methods: []server.MethodInfo{
		unary("SayHello", GreeterHandler.SayHello),
		unary("Fail", GreeterHandler.Fail),
		unary("Slow", GreeterHandler.Slow),
		{
			Name:        "SayHelloStream",
			Type:        constant.CallServerStream,
			ReqInitFunc: func() any { return new(HelloRequest) },
			StreamInitFunc: func(baseStream any) any {
				return &sayHelloStreamServer{baseStream.(*triple_protocol.ServerStream)}
			},
			MethodFunc: func(ctx context.Context, args []any, handler any) (any, error) {
				req := args[0].(*HelloRequest)
				stream := args[1].(GreeterSayHelloStreamServer)
				return nil, handler.(GreeterHandler).SayHelloStream(ctx, req, stream)
			},
		},
	},
}
