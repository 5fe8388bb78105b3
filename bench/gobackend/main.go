// Command gobackend serves meshgate.test.v1.EchoService for the benchmarks.
//
// Echo copies the request into the reply, as the Python test backend does,
// so the reply is about as large as the request. It honours no test
// instructions (fail_code, delay_seconds): the benchmark only measures the
// happy path. ServerStream sends `big` replies when big > 0, else one per
// tag (at least 3), each carrying the request. Run it with GOMAXPROCS=1 so
// it uses one core.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"meshgate.bench/gobackend/echopb"
)

// maxStreamReplies bounds the count a request may ask ServerStream for.
const maxStreamReplies = 1_000_000

type echoServer struct {
	echopb.UnimplementedEchoServiceServer
	name string
}

func (s *echoServer) Echo(_ context.Context, req *echopb.EchoRequest) (*echopb.EchoReply, error) {
	return &echopb.EchoReply{Request: req, ServedBy: s.name}, nil
}

func (s *echoServer) Ping(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func (s *echoServer) ServerStream(req *echopb.EchoRequest, stream echopb.EchoService_ServerStreamServer) error {
	// A positive big is the number of replies (the benchmark's stream of 100
	// small messages); otherwise one reply per tag, at least 3.
	count := max(len(req.Tags), 3)
	if req.Big > 0 {
		count = int(min(req.Big, maxStreamReplies))
	}
	for i := 0; i < count; i++ {
		if err := stream.Send(&echopb.EchoReply{Request: req, ServedBy: s.name}); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	port := flag.Int("port", 50051, "TCP port on 127.0.0.1")
	name := flag.String("name", "go-backend", "served_by in replies")
	flag.Parse()

	listener, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		log.Fatal(err)
	}
	server := grpc.NewServer(
		grpc.MaxRecvMsgSize(64<<20),
		grpc.MaxSendMsgSize(64<<20),
	)
	echopb.RegisterEchoServiceServer(server, &echoServer{name: *name})

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		server.Stop()
	}()
	fmt.Println("READY")
	if err := server.Serve(listener); err != nil {
		log.Fatal(err)
	}
}
