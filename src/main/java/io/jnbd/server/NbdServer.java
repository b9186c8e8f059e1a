package io.jnbd.server;

import io.jnbd.api.Client;
import io.jnbd.api.ThreadModel;
import io.jnbd.server.tls.TlsPolicy;
import io.jnbd.util.DirectBufferPool;
import io.jnbd.util.PathEntry;
import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.net.ProtocolFamily;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.nio.channels.ByteChannel;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The NBD server: accepts clients on TCP and Unix sockets (or serves one pre-connected channel)
 * and serves each from the {@link Stack} on a reader thread of its own (requests run on virtual
 * threads). One server owns one stack and unloads it when it closes, and one {@link
 * MemoryBudget} that bounds what the requests of all its connections hold.
 */
public final class NbdServer implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(NbdServer.class);
  /** Direct buffers kept for reuse across requests, at most (and no more than the memory budget). */
  static final long POOLED_BUFFER_BYTES = 128L << 20;
  /**
   * Socket send buffer asked for (the kernel may cap it): room for whole large READ replies, so
   * a replying thread rarely parks on a full socket and waits for the poller to wake it.
   */
  private static final int SEND_BUFFER_BYTES = 4 << 20;
  private static final int BACKLOG = 128;
  /**
   * How long connections may take to close once their requests are done or abandoned: a
   * writeback cache writes its dirty blocks below as its connections close.
   */
  private static final Duration CLOSE_ALLOWANCE = Duration.ofSeconds(30);

  private final Stack stack;
  private final ServerConfig config;
  private final TlsPolicy tls;
  private final DirectBufferPool pool;
  private final MemoryBudget memoryBudget;
  private final Lock allRequestsLock = new ReentrantLock();
  /** Admits one connection at a time under SERIALIZE_CONNECTIONS, otherwise any number. */
  private final Semaphore connectionGate;
  private final List<ServerSocketChannel> listeners = new CopyOnWriteArrayList<>();
  /** Listeners that take IPv6 clients only (-6). */
  private final Set<ServerSocketChannel> ipv6Only = ConcurrentHashMap.newKeySet();
  /** The socket files this server created, each removed at close if still there. */
  private final List<PathEntry> socketFiles = new CopyOnWriteArrayList<>();
  private final Set<Connection> connections = ConcurrentHashMap.newKeySet();
  private final Set<Thread> connectionThreads = ConcurrentHashMap.newKeySet();
  private final AtomicLong connectionCount = new AtomicLong();
  private final AtomicBoolean closed = new AtomicBoolean();
  private final CountDownLatch terminated = new CountDownLatch(1);
  private volatile Runnable onShutdownRequest = this::close;
  private volatile long inlineLimitNanos = Connection.INLINE_LIMIT_NANOS;
  /** Clients served at once, up to --max-connections. */
  private final Semaphore connectionSlots;
  /** Signalled whenever a client gives its slot back, for {@link #awaitClientsAtMost}. */
  private final Lock slotReturnedLock = new ReentrantLock();
  private final Condition slotReturned = slotReturnedLock.newCondition();
  private final AtomicLong refusedOverLimit = new AtomicLong();
  /** Drops clients that have not finished the handshake in time, or stall others; one daemon thread. */
  private final ScheduledExecutorService timer;

  public NbdServer(Stack stack, ServerConfig config) {
    this(stack, config, TlsPolicy.OFF);
  }

  /** A server that answers STARTTLS as {@code tls} says. */
  public NbdServer(Stack stack, ServerConfig config, TlsPolicy tls) {
    this(stack, config, tls, Executors.newSingleThreadScheduledExecutor(Thread.ofPlatform().daemon().name("nbd-timer").factory()));
  }

  /**
   * With the timer that enforces the handshake and stalled-reply limits given: tests hold its
   * tasks, so that a limit passes when the test says rather than when the clock does.
   */
  NbdServer(Stack stack, ServerConfig config, TlsPolicy tls, ScheduledExecutorService timer) {
    this.timer = timer;
    this.stack = stack;
    this.config = config;
    this.tls = tls;
    boolean oneAtATime = stack.threadModel() == ThreadModel.SERIALIZE_CONNECTIONS;
    this.connectionGate = new Semaphore(oneAtATime ? 1 : Integer.MAX_VALUE);
    this.connectionSlots = new Semaphore(config.maxConnections());
    this.memoryBudget = new MemoryBudget(config.memoryBudget());
    // What requests hold plus what waits for reuse stays within the budget.
    this.pool = new DirectBufferPool(Math.min(POOLED_BUFFER_BYTES, config.memoryBudget()), config.memoryBudget());
    log.debug("requests may hold {} KiB at once, {} KiB on one connection",
        memoryBudget.capacity() >> 10, memoryBudget.connectionShare() >> 10);
    stack.attach(() -> Thread.ofPlatform().name("nbd-shutdown-request").start(onShutdownRequest));
    long check = Math.max(10, config.stalledReplyLimit().toMillis() / 4);
    timer.scheduleWithFixedDelay(this::dropStalledClientsIfStarved, check, check, TimeUnit.MILLISECONDS);
  }

  /**
   * A client that never reads its replies keeps the memory of the replies it was sent; enough
   * of them take the whole budget, and then every other client waits. Only then, a client
   * whose reply has not moved for {@link ServerConfig#stalledReplyLimit()} is dropped.
   */
  private void dropStalledClientsIfStarved() {
    if (!memoryBudget.starved()) {
      return;
    }
    long now = System.nanoTime();
    for (Connection connection : connections) {
      connection.dropIfRepliesStalled(now, config.stalledReplyLimit());
    }
  }

  /**
   * What a layer's {@link io.jnbd.api.ServerHandle#requestShutdown} runs, on a thread of its own;
   * by default this server's {@link #close}. The command line stops its whole session instead.
   */
  public void onShutdownRequest(Runnable action) {
    onShutdownRequest = action;
  }

  /**
   * Replaces the service time under which a connection's reader runs a lone request itself
   * ({@link Connection#INLINE_LIMIT_NANOS}) for connections accepted from now on. Tests use it to
   * fix the rule's outcome, which otherwise depends on how long requests took on a busy machine.
   */
  void inlineLimit(Duration limit) {
    inlineLimitNanos = limit.toNanos();
  }

  /** Starts accepting on a TCP address; returns the bound address (port 0 picks a free one). */
  public InetSocketAddress listenTcp(InetSocketAddress address) throws IOException {
    return listenTcp(address, null);
  }

  /**
   * Starts accepting on a TCP address with a socket of one protocol family (-4, -6), or of the
   * JVM's choice when family is null. The JVM cannot make an IPv6 socket IPv6-only, so on an
   * IPv6 wildcard address clients that come over IPv4 are closed as they connect.
   */
  public InetSocketAddress listenTcp(InetSocketAddress address, ProtocolFamily family) throws IOException {
    ServerSocketChannel listener = family == null ? ServerSocketChannel.open() : ServerSocketChannel.open(family);
    if (family == StandardProtocolFamily.INET6) {
      ipv6Only.add(listener);
    }
    try {
      listener.setOption(StandardSocketOptions.SO_REUSEADDR, true);
      listener.bind(address, BACKLOG);
    } catch (IOException e) {
      listener.close();
      throw new IOException("cannot listen on " + address + ": " + e.getMessage(), e);
    }
    startAccepting(listener);
    return (InetSocketAddress) listener.getLocalAddress();
  }

  /**
   * Starts accepting on a Unix socket created at path. Only a stale socket (one nobody accepts
   * on) is replaced; anything else at path is refused, see {@link UnixSocketPath}.
   */
  public void listenUnix(Path path) throws IOException {
    ServerSocketChannel listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
    try {
      socketFiles.add(UnixSocketPath.bind(listener, path, BACKLOG));
    } catch (IOException e) {
      listener.close();
      throw e;
    }
    startAccepting(listener);
  }

  /** Starts accepting on a socket that already listens (one handed over by systemd's socket activation). */
  public void listenOn(ServerSocketChannel listener) {
    startAccepting(listener);
  }

  /** Serves one client on an already connected channel (-s), returning when it disconnects. */
  public void serveOne(ByteChannel channel) {
    serve(new Wire(channel, channel), "stdio", null);
  }

  /** Blocks until {@link #close} has finished. */
  public void awaitTermination() throws InterruptedException {
    terminated.await();
  }

  /** Number of connections currently open. */
  public int openConnections() {
    return connections.size();
  }

  /** Number of connections accepted since the server started. */
  public long acceptedConnections() {
    return connectionCount.get();
  }

  DirectBufferPool bufferPool() {
    return pool;
  }

  MemoryBudget memoryBudget() {
    return memoryBudget;
  }

  private void startAccepting(ServerSocketChannel listener) {
    listeners.add(listener);
    // A platform thread: a socket accepted by a virtual thread starts in non-blocking mode, and
    // then the connection's reader polls before every read instead of blocking in it.
    Thread.ofPlatform().daemon().name("nbd-accept").start(() -> acceptLoop(listener));
  }

  private void acceptLoop(ServerSocketChannel listener) {
    while (!closed.get()) {
      SocketChannel client;
      try {
        client = listener.accept();
      } catch (ClosedChannelException e) {
        return;
      } catch (IOException e) {
        if (!closed.get()) {
          log.warn("accept failed: {}", e.getMessage());
        }
        continue;
      }
      if (ipv6Only.contains(listener) && remoteAddress(client) instanceof InetSocketAddress peer
          && peer.getAddress() instanceof Inet4Address) {
        log.debug("refused {}: an IPv4 client, and -6 was given", peer);
        closeQuietly(client);
        continue;
      }
      if (!connectionSlots.tryAcquire()) {
        refuseOverLimit(client);
        continue;
      }
      tune(client);
      String peer = describePeer(client);
      // The reader is a platform thread: it blocks in the kernel's read, so a serial client's next
      // request wakes it directly instead of through the virtual-thread poller (measured: ~12%
      // more throughput for nbdcopy --requests=1). Connections are few; requests stay virtual.
      Thread thread = Thread.ofPlatform().daemon().name("nbd-conn-" + peer).unstarted(() -> {
        try {
          serve(new Wire(client, client), peer, remoteAddress(client));
        } finally {
          connectionThreads.remove(Thread.currentThread());
          connectionSlots.release();
          slotReturnedLock.lock();
          try {
            slotReturned.signalAll();
          } finally {
            slotReturnedLock.unlock();
          }
        }
      });
      connectionThreads.add(thread);
      thread.start();
    }
  }

  /**
   * Waits until at most {@code clients} clients hold a connection slot: their connections have
   * ended, export closed and all. Tests use it to know that the server noticed a client leave.
   *
   * @return false if more clients still held a slot after {@code limit}
   */
  public boolean awaitClientsAtMost(int clients, Duration limit) throws InterruptedException {
    long left = limit.toNanos();
    slotReturnedLock.lock();
    try {
      while (config.maxConnections() - connectionSlots.availablePermits() > clients) {
        if (left <= 0) {
          return false;
        }
        left = slotReturned.awaitNanos(left);
      }
      return true;
    } finally {
      slotReturnedLock.unlock();
    }
  }

  /** Closes a client over --max-connections at once: it sees the connection end before the greeting. */
  private void refuseOverLimit(SocketChannel client) {
    long refused = refusedOverLimit.incrementAndGet();
    if (refused == 1) {
      log.warn("{} clients connected already (--max-connections); refusing more", config.maxConnections());
    } else {
      log.debug("refused client number {} over --max-connections", refused);
    }
    closeQuietly(client);
  }

  private static void closeQuietly(SocketChannel client) {
    try {
      client.close();
    } catch (IOException ignored) {
      // Closing is all we wanted.
    }
  }

  private static void tune(SocketChannel client) {
    try {
      client.setOption(StandardSocketOptions.SO_SNDBUF, SEND_BUFFER_BYTES);
      if (client.getRemoteAddress() instanceof InetSocketAddress) {
        client.setOption(StandardSocketOptions.TCP_NODELAY, true);
      }
    } catch (IOException e) {
      log.debug("cannot set socket options: {}", e.getMessage());
    }
  }

  private String describePeer(SocketChannel client) {
    long id = connectionCount.incrementAndGet();
    try {
      if (client.getRemoteAddress() instanceof InetSocketAddress inet) {
        return "#" + id + " " + inet.getAddress().getHostAddress() + ":" + inet.getPort();
      }
    } catch (IOException ignored) {
      // Naming the peer is best effort.
    }
    return "#" + id;
  }

  private static SocketAddress remoteAddress(SocketChannel client) {
    try {
      return client.getRemoteAddress();
    } catch (IOException e) {
      return null;
    }
  }

  private void serve(Wire wire, String peer, SocketAddress address) {
    try {
      connectionGate.acquire();
    } catch (InterruptedException e) {
      wire.close();
      Thread.currentThread().interrupt();
      return;
    }
    Client client = new Client(address);
    Connection connection = new Connection(wire, stack, config, pool, memoryBudget, allRequestsLock, peer, client, tls,
        inlineLimitNanos);
    connections.add(connection);
    ScheduledFuture<?> handshakeLimit = null;
    try {
      if (closed.get()) {
        wire.close();
        return;
      }
      log.debug("{}: connected", peer);
      if (!config.handshakeLimit().isZero()) {
        handshakeLimit = timer.schedule(connection::dropIfStillNegotiating,
            config.handshakeLimit().toMillis(), TimeUnit.MILLISECONDS);
      }
      try {
        client.callAs(() -> {
          stack.preconnect(client, config.readOnly());
          return null;
        });
      } catch (IOException | RuntimeException e) {
        log.info("{}: refused: {}", peer, e.getMessage());
        wire.close();
        return;
      }
      connection.serve();
    } finally {
      if (handshakeLimit != null) {
        handshakeLimit.cancel(false);
      }
      connections.remove(connection);
      connectionGate.release();
    }
  }

  /** Stops accepting, lets in-flight requests finish, closes connections and unloads the stack. */
  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      awaitQuietly();
      return;
    }
    for (ServerSocketChannel listener : listeners) {
      try {
        listener.close();
      } catch (IOException ignored) {
        // Closing is all we wanted.
      }
    }
    for (PathEntry socket : socketFiles) {
      try {
        // A socket file replaced since is someone else's now.
        socket.deleteIfCurrent();
      } catch (IOException ignored) {
        // Left behind, it is a stale socket, which the next start replaces.
      }
    }
    connections.forEach(Connection::stop);
    // A connection waits out the grace, then interrupts its request threads. A reply that the
    // reader is writing itself, to a client that does not read, ends only when the socket closes;
    // then a connection may still be closing its export (a writeback cache writing back).
    awaitConnectionThreads(config.shutdownGrace().plusSeconds(1));
    connections.forEach(Connection::abort);
    awaitConnectionThreads(CLOSE_ALLOWANCE);
    long open = connectionThreads.stream().filter(Thread::isAlive).count();
    if (open > 0) {
      log.warn("stopping with {} connections still closing after {} + {}", open, config.shutdownGrace(), CLOSE_ALLOWANCE);
    }
    timer.shutdownNow();
    pool.close();
    try {
      stack.unload();
    } catch (RuntimeException e) {
      log.warn("unloading failed: {}", e.toString());
    }
    terminated.countDown();
  }

  private void awaitConnectionThreads(Duration timeout) {
    long deadline = System.nanoTime() + timeout.toNanos();
    for (Thread thread : connectionThreads) {
      try {
        thread.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
  }

  private void awaitQuietly() {
    try {
      terminated.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
