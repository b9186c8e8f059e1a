package io.jnbd.blockcache;

import static org.assertj.core.api.Assertions.assertThat;

import io.jnbd.blockcache.BlockTable.Block;
import io.jnbd.blockcache.BlockTable.State;
import io.jnbd.testing.PropertyCheck;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.LongAdder;
import org.junit.jupiter.api.Test;

/**
 * The block table on its own: seeded random sequences of what {@link BlockCache} does under its
 * lock (claim, finish a fill, dirty, pin, unpin, drop, touch, pick dirty blocks to write back),
 * with the invariants checked after every step, and eviction checked against the LRU order it
 * must follow. Failing sequences are shrunk; {@code -Djnbd.seed=N} replays one.
 */
class BlockTableTest {
  private static final int CAPACITY = 6;
  private static final int HIGH = 5;
  private static final int LOW = 3;
  private static final int INDICES = 12;

  enum Kind { CLAIM, FILLED, DIRTY, CLEAN, PIN, UNPIN, DROP, TOUCH, READ, OLDEST_DIRTY }

  record Op(Kind kind, long index) {}

  static Op randomOp(Random random) {
    return new Op(Kind.values()[random.nextInt(Kind.values().length)], random.nextInt(INDICES));
  }

  @Test
  void invariantsHoldAndEvictionFollowsTheLru() {
    PropertyCheck.forAll(500, random -> PropertyCheck.listOf(random, 1, 80, BlockTableTest::randomOp), BlockTableTest::run);
  }

  private static void run(List<Op> ops) {
    LongAdder evictions = new LongAdder();
    BlockTable table = new BlockTable(CAPACITY, HIGH, LOW, evictions);
    // One entry per pin this test holds.
    List<Block> pins = new ArrayList<>();
    for (Op op : ops) {
      Block block = table.get(op.index());
      switch (op.kind()) {
        case CLAIM -> {
          if (block == null) {
            claim(table, op.index(), pins, evictions);
          }
        }
        case FILLED, CLEAN -> {
          if (block != null) {
            block.state = State.CLEAN;
            block.filled = null;
          }
        }
        case DIRTY -> {
          if (block != null) {
            block.state = State.DIRTY;
            block.filled = null;
          }
        }
        case PIN -> {
          if (block != null) {
            block.pins++;
            pins.add(block);
          }
        }
        case UNPIN -> {
          if (!pins.isEmpty()) {
            Block pinned = pins.remove((int) (op.index() % pins.size()));
            int used = table.usedSlots();
            table.unpin(pinned);
            boolean lastPinOfDropped = pinned.dropped && pinned.pins == 0;
            assertThat(table.usedSlots()).as("slot freed by the last unpin of a dropped block only")
                .isEqualTo(lastPinOfDropped ? used - 1 : used);
          }
        }
        case DROP -> {
          if (block != null) {
            int used = table.usedSlots();
            table.drop(block);
            assertThat(table.get(op.index())).isNull();
            assertThat(table.usedSlots()).as("a pinned block keeps its slot").isEqualTo(block.pins > 0 ? used : used - 1);
          }
        }
        case TOUCH -> {
          if (block != null) {
            table.touch(block);
            assertThat(table.inLruOrder().getLast()).isSameAs(block);
          }
        }
        case READ -> {
          if (block != null) {
            boolean readBefore = block.read;
            List<Block> before = table.inLruOrder();
            table.touchByRead(block);
            if (readBefore) {
              assertThat(table.inLruOrder().getLast()).as("a second read is a use").isSameAs(block);
            } else {
              assertThat(table.inLruOrder()).as("the first read after a fill is not a use").isEqualTo(before);
            }
          }
        }
        case OLDEST_DIRTY -> {
          List<Block> candidates = table.inLruOrder().stream().filter(b -> b.state == State.DIRTY && b.pins == 0).toList();
          int wanted = Math.max(1, table.usedSlots() - Math.min(LOW, CAPACITY - 1));
          List<Block> picked = table.pinOldestDirty();
          assertThat(picked).as("the least recently used unpinned dirty blocks")
              .containsExactlyElementsOf(candidates.subList(0, Math.min(wanted, candidates.size())));
          pins.addAll(picked);
        }
      }
      List<Block> droppedButPinned = pins.stream().filter(b -> b.dropped).distinct().toList();
      table.checkInvariants(droppedButPinned);
      for (Block pinned : pins) {
        if (!pinned.dropped) {
          assertThat(table.get(pinned.index)).as("pinned block %d never evicted", pinned.index).isSameAs(pinned);
        }
      }
    }
  }

  /** Claims a block, checking which blocks the claim evicted and that it fails only when it must. */
  private static void claim(BlockTable table, long index, List<Block> pins, LongAdder evictions) {
    List<Block> before = table.inLruOrder();
    int usedBefore = table.usedSlots();
    long evictionsBefore = evictions.sum();
    Block claimed = table.claim(index, State.FILLING, new CompletableFuture<>());
    List<Block> after = table.inLruOrder();
    List<Block> evicted = before.stream().filter(b -> !after.contains(b)).toList();
    List<Block> evictable = before.stream().filter(b -> b.state == State.CLEAN && b.pins == 0).toList();
    assertThat(evictions.sum() - evictionsBefore).isEqualTo(evicted.size());
    if (usedBefore < HIGH) {
      assertThat(evicted).as("no eviction below the high threshold").isEmpty();
    } else {
      // Least recently used first, and only as many as bring usage down to the low threshold.
      assertThat(evictable).startsWith(evicted.toArray(Block[]::new));
      int usedAfterEviction = usedBefore - evicted.size();
      assertThat(usedAfterEviction <= LOW || evicted.size() == evictable.size())
          .as("evicted %d of %d evictable, %d slots left in use", evicted.size(), evictable.size(), usedAfterEviction).isTrue();
      assertThat(usedAfterEviction).isGreaterThanOrEqualTo(Math.min(LOW, usedBefore));
    }
    if (claimed == null) {
      assertThat(table.usedSlots()).as("a claim fails only when every slot is held").isEqualTo(CAPACITY);
      assertThat(after).as("and nothing could be evicted").noneMatch(b -> b.state == State.CLEAN && b.pins == 0);
    } else {
      assertThat(claimed.index).isEqualTo(index);
      assertThat(after.getLast()).isSameAs(claimed);
      assertThat(table.get(index)).isSameAs(claimed);
    }
  }
}
