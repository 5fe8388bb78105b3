// The dubbo-go interop peer of meshgate's integration tests (see ../README.md): the IDL Greeter
// over Triple and the hessian2 UserService over the dubbo protocol, each as g1/1.0.0 and
// g2/2.0.0. Prints READY once both ports accept connections.
//
// With --call HOST:PORT it is a Triple consumer instead (client.go): one Greeter call, each
// reply printed as a JSON line.
//
// No registry, unless MESHGATE_REGISTRY names one (zookeeper://127.0.0.1:PORT): then the peer
// registers there with dubbo-go's own zookeeper registry, in MESHGATE_REGISTER_MODE (interface,
// instance or all; default all), as the application MESHGATE_APPLICATION (default
// meshgate-go-peer), with its metadata published to the same ZooKeeper.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"time"

	"dubbo.apache.org/dubbo-go/v3"
	_ "dubbo.apache.org/dubbo-go/v3/imports"
	"dubbo.apache.org/dubbo-go/v3/protocol"
	"dubbo.apache.org/dubbo-go/v3/registry"
	"dubbo.apache.org/dubbo-go/v3/server"
	dubbotls "dubbo.apache.org/dubbo-go/v3/tls"
	hessian "github.com/apache/dubbo-go-hessian2"

	"meshgate.test/peers/go/greeterpb"
)

const host = "127.0.0.1"

var groupVersions = [][2]string{{"g1", "1.0.0"}, {"g2", "2.0.0"}}

// onlyProtocol pins a service to one protocol id. server.WithProtocolIDs cannot: in dubbo-go
// v3.3.2 it only applies an empty list.
func onlyProtocol(id string) server.ServiceOption {
	return func(opts *server.ServiceOptions) {
		opts.Service.ProtocolIDs = []string{id}
	}
}

func main() {
	triplePort := flag.Int("triple-port", 0, "Triple (HTTP/2 gRPC + HTTP/1 JSON) port")
	dubboPort := flag.Int("dubbo-port", 0, "dubbo2/hessian2 port")
	tlsCert := flag.String("tls-cert", "", "serve both ports over TLS with this PEM chain")
	tlsKey := flag.String("tls-key", "", "the PEM key of --tls-cert")
	tlsCA := flag.String("tls-ca", "", "with --tls-cert: require client certificates from this CA")
	call := registerCallFlags()
	flag.Parse()
	if call.address != "" {
		runClient(call)
		return
	}
	if *triplePort == 0 || *dubboPort == 0 {
		log.Fatal("usage: go-peer --triple-port N --dubbo-port M")
	}
	hessian.RegisterPOJO(&User{})

	instance, err := dubbo.NewInstance(instanceOptions()...)
	if err != nil {
		log.Fatalf("new instance: %v", err)
	}
	options := []server.ServerOption{
		server.WithServerProtocol(
			protocol.WithID("tri"), protocol.WithTriple(), protocol.WithIp(host),
			protocol.WithPort(*triplePort),
		),
		server.WithServerProtocol(dubboProtocol(*dubboPort)...),
	}
	if *tlsCert != "" {
		// One TLS setting for the server: dubbo-go applies it to Triple and to getty (dubbo2).
		options = append(options, server.WithServerTLSOption(
			dubbotls.WithCertFile(*tlsCert), dubbotls.WithKeyFile(*tlsKey),
			dubbotls.WithCACertFile(*tlsCA),
		))
	}
	srv, err := instance.NewServer(options...)
	if err != nil {
		log.Fatalf("new server: %v", err)
	}
	for _, gv := range groupVersions {
		group, version := gv[0], gv[1]
		err = greeterpb.RegisterGreeterHandler(srv, newGreeter(group, version),
			server.WithGroup(group), server.WithVersion(version), onlyProtocol("tri"))
		if err != nil {
			log.Fatalf("register Greeter %s: %v", group, err)
		}
		err = srv.RegisterService(&UserService{group: group, version: version},
			server.WithInterface("org.apache.dubbo.meshgate.UserService"),
			server.WithGroup(group), server.WithVersion(version),
			server.WithSerialization("hessian2"), onlyProtocol("dubbo"))
		if err != nil {
			log.Fatalf("register UserService %s: %v", group, err)
		}
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	for _, port := range []int{*triplePort, *dubboPort} {
		if err := waitForPort(port, served); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("READY")
	os.Stdout.Sync()
	if err := <-served; err != nil {
		log.Fatalf("serve: %v", err)
	}
	select {}
}

// dubboProtocol is the dubbo2 port. No WithIp without a registry: dubbo-go also exports its
// MetadataService on this port under the address ":port", and a second listener for
// "127.0.0.1:port" would collide. With a registry the IP is needed, or dubbo-go registers the
// machine's first non-loopback address.
func dubboProtocol(port int) []protocol.ServerOption {
	options := []protocol.ServerOption{protocol.WithID("dubbo"), protocol.WithDubbo(), protocol.WithPort(port)}
	if os.Getenv("MESHGATE_REGISTRY") != "" {
		options = append(options, protocol.WithIp(host))
	}
	return options
}

// instanceOptions names the application and, when MESHGATE_REGISTRY is set, the registry.
func instanceOptions() []dubbo.InstanceOption {
	options := []dubbo.InstanceOption{dubbo.WithName(envOr("MESHGATE_APPLICATION", "meshgate-go-peer"))}
	address := os.Getenv("MESHGATE_REGISTRY")
	if address == "" {
		return options
	}
	mode := map[string]registry.Option{
		"interface": registry.WithRegisterInterface(),
		"instance":  registry.WithRegisterService(),
		"all":       registry.WithRegisterServiceAndInterface(),
	}[envOr("MESHGATE_REGISTER_MODE", "all")]
	if mode == nil {
		log.Fatalf("MESHGATE_REGISTER_MODE is interface, instance or all")
	}
	return append(options,
		dubbo.WithRegistry(registry.WithAddress(address), mode, registry.WithoutUseAsConfigCenter()),
		dubbo.WithRemoteMetadata())
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func waitForPort(port int, served <-chan error) error {
	address := net.JoinHostPort(host, strconv.Itoa(port))
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-served:
			return fmt.Errorf("server stopped before %s listened: %v", address, err)
		default:
		}
		if conn, err := net.DialTimeout("tcp", address, 200*time.Millisecond); err == nil {
			conn.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s after 30s", address)
}
