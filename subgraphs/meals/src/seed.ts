import type { MealsConfig } from './config.js';
import { createMealsService } from './app.js';
import { Prisma } from './data/generated/prisma/client.js';
import type { Allergen } from './domain/meals.js';

interface DemoMeal {
  id: string;
  name: string;
  description: string;
  priceAmount: number;
  available: boolean;
  components: { name: string; allergens: Allergen[] }[];
  addons: { id: string; name: string; priceAmount: number; maxQuantity: number }[];
}

interface DemoCategory {
  id: string;
  name: string;
  description: string;
  sortOrder: number;
  meals: DemoMeal[];
}

const category = (n: number) => `10000000-0000-4000-8000-00000000000${n}`;
const meal = (n: number) => `20000000-0000-4000-8000-00000000000${n}`;
const addon = (n: number) => `30000000-0000-4000-8000-00000000000${n}`;

/**
 * The demo menu for development and end-to-end tests. Ids are fixed so tests and docs can name them.
 * Prices are EUR cents. Never loaded in production.
 */
export const demoMenu: DemoCategory[] = [
  {
    id: category(1),
    name: 'Pizzas',
    description: 'Stone-baked, 30 cm',
    sortOrder: 1,
    meals: [
      {
        id: meal(1),
        name: 'Margherita',
        description: 'Tomato, mozzarella and fresh basil',
        priceAmount: 950,
        available: true,
        components: [
          { name: 'Pizza dough', allergens: ['GLUTEN'] },
          { name: 'Tomato sauce', allergens: [] },
          { name: 'Mozzarella', allergens: ['MILK'] },
        ],
        addons: [
          { id: addon(1), name: 'Extra mozzarella', priceAmount: 150, maxQuantity: 3 },
          { id: addon(2), name: 'Fresh chilli', priceAmount: 50, maxQuantity: 2 },
        ],
      },
      {
        id: meal(2),
        name: 'Diavola',
        description: 'Tomato, mozzarella and spicy salami',
        priceAmount: 1150,
        available: true,
        components: [
          { name: 'Pizza dough', allergens: ['GLUTEN'] },
          { name: 'Mozzarella', allergens: ['MILK'] },
          { name: 'Spicy salami', allergens: ['MUSTARD', 'SULPHITES'] },
        ],
        addons: [{ id: addon(3), name: 'Extra salami', priceAmount: 200, maxQuantity: 2 }],
      },
      {
        id: meal(3),
        name: 'Quattro Formaggi',
        description: 'Mozzarella, gorgonzola, parmesan and fontina',
        priceAmount: 1250,
        available: false,
        components: [
          { name: 'Pizza dough', allergens: ['GLUTEN'] },
          { name: 'Four cheeses', allergens: ['MILK'] },
        ],
        addons: [],
      },
    ],
  },
  {
    id: category(2),
    name: 'Bowls',
    description: 'Warm and cold bowls',
    sortOrder: 2,
    meals: [
      {
        id: meal(4),
        name: 'Salmon Poke',
        description: 'Sushi rice, raw salmon, edamame and sesame dressing',
        priceAmount: 1390,
        available: true,
        components: [
          { name: 'Sushi rice', allergens: [] },
          { name: 'Salmon', allergens: ['FISH'] },
          { name: 'Sesame dressing', allergens: ['SESAME', 'SOY'] },
        ],
        addons: [
          { id: addon(4), name: 'Avocado', priceAmount: 180, maxQuantity: 2 },
          { id: addon(5), name: 'Extra salmon', priceAmount: 350, maxQuantity: 2 },
        ],
      },
      {
        id: meal(5),
        name: 'Falafel Bowl',
        description: 'Falafel, hummus, tabbouleh and tahini',
        priceAmount: 1090,
        available: true,
        components: [
          { name: 'Falafel', allergens: ['GLUTEN'] },
          { name: 'Hummus', allergens: ['SESAME'] },
          { name: 'Tabbouleh', allergens: ['GLUTEN', 'CELERY'] },
        ],
        addons: [{ id: addon(6), name: 'Halloumi', priceAmount: 250, maxQuantity: 1 }],
      },
      {
        id: meal(6),
        name: 'Thai Peanut Bowl',
        description: 'Rice noodles, tofu and peanut sauce',
        priceAmount: 1190,
        available: true,
        components: [
          { name: 'Rice noodles', allergens: [] },
          { name: 'Tofu', allergens: ['SOY'] },
          { name: 'Peanut sauce', allergens: ['PEANUTS', 'SOY'] },
        ],
        addons: [],
      },
    ],
  },
  {
    id: category(3),
    name: 'Drinks',
    description: 'Cold drinks',
    sortOrder: 3,
    meals: [
      {
        id: meal(7),
        name: 'Lemonade',
        description: 'Home-made lemonade with mint',
        priceAmount: 350,
        available: true,
        components: [{ name: 'Lemonade', allergens: [] }],
        addons: [],
      },
      {
        id: meal(8),
        name: 'Iced Tea',
        description: 'Black tea with peach',
        priceAmount: 320,
        available: true,
        components: [{ name: 'Iced tea', allergens: [] }],
        addons: [],
      },
    ],
  },
];

/** Creates the demo menu when the menu is empty; safe to run on every start. Returns the meals created. */
export async function seedMeals(config: MealsConfig): Promise<number> {
  const { prisma } = createMealsService(config);
  try {
    if ((await prisma.category.count()) > 0) return 0;
    const meals = demoMenu.flatMap((demo) => demo.meals.map((m) => ({ ...m, categoryId: demo.id })));
    await prisma.$transaction(async (tx) => {
      await tx.category.createMany({
        data: demoMenu.map(({ id, name, description, sortOrder }) => ({ id, name, description, sortOrder })),
      });
      await tx.meal.createMany({
        data: meals.map(({ id, categoryId, name, description, priceAmount, available }) => ({
          id,
          categoryId,
          name,
          description,
          priceAmount,
          available,
          currency: config.MEALS_CURRENCY,
        })),
      });
      await tx.mealComponent.createMany({
        data: meals.flatMap((m) => m.components.map((component) => ({ ...component, mealId: m.id }))),
      });
      await tx.mealAddon.createMany({
        data: meals.flatMap((m) => m.addons.map((extra) => ({ ...extra, mealId: m.id }))),
      });
    });
    return meals.length;
  } catch (error) {
    // Another process seeded the same fixed ids first: the menu is there, which is all we want.
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002') return 0;
    throw error;
  } finally {
    await prisma.$disconnect();
  }
}
