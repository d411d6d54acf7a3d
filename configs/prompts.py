"""Prompt sets for the three tasks: dream narration, IQ-style questions, Cookie Theft description."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prompt:
    """One prompt of a task."""

    text: str
    category: str  # "dream", "math", "language", "logic", "factual", "creativity", "picture_description"
    answer: str | None = None  # answer key where the question has one objective answer


DREAM_PROMPTS: tuple[Prompt, ...] = (
    Prompt("Just narrate a dream with as much detail as you can.", "dream"),
    Prompt("Just describe a dream as vividly and narratively as possible.", "dream"),
    Prompt("Tell me about a dream.", "dream"),
    Prompt("Describe a dream.", "dream"),
    Prompt("Share a dream.", "dream"),
    Prompt("Narrate a dream you had last night.", "dream"),
    Prompt("Tell me about a dream you had recently.", "dream"),
    Prompt("Describe a recurring dream in detail.", "dream"),
    Prompt("Tell me about a nightmare you once had.", "dream"),
    Prompt("Describe a dream in which you were flying.", "dream"),
    Prompt("Tell me about a dream you remember from your childhood.", "dream"),
    Prompt("In the first person, narrate a dream from beginning to end.", "dream"),
    Prompt("Describe the strangest dream you can remember.", "dream"),
    Prompt("Tell me, in your own words, what happened in a dream you had.", "dream"),
    Prompt("Recount a dream as if you had just woken up from it.", "dream"),
    Prompt("Write down a dream the way you would in a dream journal.", "dream"),
    Prompt("Describe a dream in which you were lost somewhere.", "dream"),
    Prompt("Tell me about a dream where you met someone you know.", "dream"),
    Prompt("Narrate a dream that took place in a house you did not recognise.", "dream"),
    Prompt("Describe a dream about being chased.", "dream"),
    Prompt("Tell me about a dream in which you were falling.", "dream"),
    Prompt("Describe a dream about water, such as the sea or a river.", "dream"),
    Prompt("Narrate a happy dream with as many details as possible.", "dream"),
    Prompt("Tell me about a frightening dream and how it ended.", "dream"),
    Prompt("Describe a dream in which something impossible happened.", "dream"),
    Prompt("Tell me about a dream where you were back at school.", "dream"),
    Prompt("Narrate a dream about a journey.", "dream"),
    Prompt("Describe a dream you had about an animal.", "dream"),
    Prompt("Tell me about a vivid dream, including the places, people and feelings in it.", "dream"),
    Prompt("Describe a dream that felt completely real.", "dream"),
    Prompt("Narrate a dream in the present tense, as if it were happening now.", "dream"),
    Prompt("Tell me about a dream that you still think about.", "dream"),
    Prompt("Describe a dream in which you could not find your way home.", "dream"),
    Prompt("Recount a dream about a place from your past.", "dream"),
    Prompt("Tell me the story of a dream, step by step.", "dream"),
    Prompt("Describe a dream you had during an afternoon nap.", "dream"),
    Prompt("Narrate a lucid dream in which you knew you were dreaming.", "dream"),
    Prompt("Please tell me about one of your dreams in as much detail as you can.", "dream"),
)

IQ_PROMPTS: tuple[Prompt, ...] = (
    # math (15)
    Prompt("What number completes the sequence: 93, 94, 95, __, 97?", "math", "96"),
    Prompt("What is the result of 3 + 48 / 6 - 7?", "math", "4"),
    Prompt("What is 12 multiplied by 7?", "math", "84"),
    Prompt("What is 144 divided by 12?", "math", "12"),
    Prompt("What number completes the sequence: 2, 4, 8, 16, __?", "math", "32"),
    Prompt("What is 15% of 200?", "math", "30"),
    Prompt("What is 3 divided by 2, written as a decimal number?", "math", "1.5"),
    Prompt("What is 1 divided by 2, written as a decimal number?", "math", "0.5"),
    Prompt("What is the square root of 81?", "math", "9"),
    Prompt("What number completes the sequence: 1, 1, 2, 3, 5, 8, __?", "math", "13"),
    Prompt("A train travels at 60 kilometres per hour. How many kilometres does it travel in 3 hours?", "math", "180"),
    Prompt("What is 7 squared?", "math", "49"),
    Prompt("If you have 5 apples and give away 2, how many apples do you have left?", "math", "3"),
    Prompt("What is 100 minus 37?", "math", "63"),
    Prompt("A shirt costs 20 dollars and is discounted by 25%. What is its new price in dollars?", "math", "15"),
    # language (14)
    Prompt("Which word comes next: January, March, May, ___?", "language", "July"),
    Prompt("Find the antonym of 'scarce' among these: abundant, limited, rare, minimal", "language", "abundant"),
    Prompt("Find the synonym of 'happy' among these: sad, joyful, angry, tired", "language", "joyful"),
    Prompt("Find the antonym of 'ancient' among these: old, modern, historic, aged", "language", "modern"),
    Prompt("Which word does not belong: apple, banana, carrot, grape?", "language", "carrot"),
    Prompt("Which word does not belong: red, blue, chair, green?", "language", "chair"),
    Prompt("What is the plural of 'mouse'?", "language", "mice"),
    Prompt("What is the past tense of 'run'?", "language", "ran"),
    Prompt("What is the past tense of 'go'?", "language", "went"),
    Prompt("Complete the analogy: bird is to fly as fish is to ___.", "language", "swim"),
    Prompt("Complete the analogy: hot is to cold as up is to ___.", "language", "down"),
    Prompt("Which word comes next: Monday, Wednesday, Friday, ___?", "language", "Sunday"),
    Prompt("Rearrange the letters 'TAC' to form the name of an animal.", "language", "cat"),
    Prompt("How many letters are in the word 'elephant'?", "language", "8"),
    # logic (12)
    Prompt("All cats are animals. All animals are floms. Can we conclude that all cats are floms?", "logic", "yes"),
    Prompt("All roses are flowers. Some flowers fade quickly. Can we conclude that all roses fade quickly?", "logic", "no"),
    Prompt("If it is raining, the ground is wet. It is raining. Is the ground wet?", "logic", "yes"),
    Prompt("No fish are mammals. A salmon is a fish. Is a salmon a mammal?", "logic", "no"),
    Prompt("Some dogs are brown. Rex is a dog. Can we conclude that Rex is brown?", "logic", "no"),
    Prompt("All blips are blops, and no blops are blups. Can a blip be a blup?", "logic", "no"),
    Prompt("A is to the left of B, and B is to the left of C. Is A to the left of C?", "logic", "yes"),
    Prompt("Tom is taller than Sam. Sam is taller than Ben. Who is the shortest?", "logic", "Ben"),
    Prompt("Anna is older than Beth. Beth is older than Clara. Who is the oldest?", "logic", "Anna"),
    Prompt("The red box is heavier than the blue box, and the blue box is heavier than the green box. "
           "Which colour is the lightest box?", "logic", "green"),
    Prompt("If today is Tuesday, what day of the week will it be in 3 days?", "logic", "Friday"),
    Prompt("A farmer has 17 sheep. All but 9 run away. How many sheep are left?", "logic", "9"),
    # factual (16)
    Prompt("How many sides does a hexagon have?", "factual", "6"),
    Prompt("What is the capital of France?", "factual", "Paris"),
    Prompt("How many legs does a spider have?", "factual", "8"),
    Prompt("What is the capital of Japan?", "factual", "Tokyo"),
    Prompt("What is the capital of Italy?", "factual", "Rome"),
    Prompt("Which planet is known as the Red Planet?", "factual", "Mars"),
    Prompt("What is the largest planet in our solar system?", "factual", "Jupiter"),
    Prompt("How many days are in a week?", "factual", "7"),
    Prompt("How many hours are in a day?", "factual", "24"),
    Prompt("How many months are in a year?", "factual", "12"),
    Prompt("How many minutes are in an hour?", "factual", "60"),
    Prompt("At what temperature in degrees Celsius does water freeze at sea level?", "factual", "0"),
    Prompt("What is the chemical symbol for gold?", "factual", "Au"),
    Prompt("What is the name of the largest ocean on Earth?", "factual", "Pacific"),
    Prompt("What is the surname of the playwright who wrote 'Romeo and Juliet'?", "factual", "Shakespeare"),
    Prompt("What colour do you get by mixing blue and yellow paint?", "factual", "green"),
    # creativity (8)
    Prompt("List as many animals as you can.", "creativity"),
    Prompt("Name as many fruits as you can.", "creativity"),
    Prompt("List as many words starting with the letter F as you can.", "creativity"),
    Prompt("Think of as many uses for a brick as you can.", "creativity"),
    Prompt("Write a short poem about the sea.", "creativity"),
    Prompt("Invent a new word and explain what it means.", "creativity"),
    Prompt("Tell a short story about a lost key.", "creativity"),
    Prompt("Describe what the world would be like if people could fly.", "creativity"),
)

COOKIE_THEFT_PROMPTS: tuple[Prompt, ...] = (
    Prompt("Tell me everything you see going on in this picture.", "picture_description"),
    Prompt("Describe everything happening in this picture.", "picture_description"),
    Prompt("Describe this picture in as much detail as possible.", "picture_description"),
    Prompt("What is going on in this picture?", "picture_description"),
    Prompt("Tell me what you see in this picture.", "picture_description"),
    Prompt("Describe this picture.", "picture_description"),
    Prompt("Look at this picture and tell me everything that is happening.", "picture_description"),
    Prompt("What do you see happening in this image?", "picture_description"),
    Prompt("Describe the scene shown in this picture.", "picture_description"),
    Prompt("Tell me about this picture.", "picture_description"),
    Prompt("Please describe what the people in this picture are doing.", "picture_description"),
    Prompt("Describe everything you notice in this image, including the people and the objects.", "picture_description"),
    Prompt("Explain what is happening in this picture.", "picture_description"),
    Prompt("Tell me the story of what is happening in this picture.", "picture_description"),
    Prompt("Describe this image as completely as you can.", "picture_description"),
    Prompt("What is happening in this scene? Describe it in detail.", "picture_description"),
    Prompt("Describe all the actions and objects you can see in this picture.", "picture_description"),
    Prompt("Talk about everything you see in this picture.", "picture_description"),
    Prompt("Give a detailed description of this picture.", "picture_description"),
    Prompt("Describe what you see in this image, from one side to the other.", "picture_description"),
)

TASK_PROMPTS: dict[str, tuple[Prompt, ...]] = {
    "dreams": DREAM_PROMPTS,
    "iq": IQ_PROMPTS,
    "cookie_theft": COOKIE_THEFT_PROMPTS,
}
